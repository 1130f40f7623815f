//! eventpipe's storage in PostgreSQL: the migrations (embedded), the pool,
//! the schema check, the write path's statements ([`events`] for batches of
//! events and their rollups, [`anomalies`] for anomalies, their history and
//! the outbox; each takes the caller's connection, so the worker sequences
//! its own transaction), the time partitions ([`partitions`]) and [`retention`], what the
//! operations commands read and record ([`stats`], [`redrives`]), and
//! scratch databases for tests and benches. The worker's
//! write path reaches PostgreSQL only through this crate; the read side
//! (`eventpipe-query`) has its own module for its queries.

pub mod anomalies;
mod database;
mod error;
pub mod events;
pub mod partitions;
pub mod redrives;
pub mod retention;
/// Diesel's view of the tables, as `diesel print-schema` writes it.
#[allow(missing_docs)] // generated
pub mod schema;
mod scratch;
pub mod stats;

pub use database::{
    Connection, DbPool, MIGRATIONS, check_schema, connect, connection, create_database_if_missing,
    migrate, ping, pool, redact_url,
};
/// Runs a transaction on a [`Connection`]: the worker sequences the
/// statements of [`events`] and [`anomalies`] in one.
pub use diesel_async::AsyncConnection;
pub use diesel_async::AsyncPgConnection;
pub use error::StoreError;
pub use events::{DEFAULT_DEDUP_WINDOW, NewEvent, Stored, store_batch};
pub use scratch::ScratchDatabase;
