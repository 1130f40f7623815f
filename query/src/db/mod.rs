//! The analytics queries. Event counts add the hourly rollup over the
//! range's whole hours, the five-minute rollup over the whole spans left,
//! the per-minute rollup over the whole minutes left (each tier only where
//! it divides the buckets) and a count of the events in the partial-minute
//! edges, so any `[from, to)` is exact to the millisecond while a week
//! reads a few thousand rollup rows instead of millions of events. Anomaly
//! queries read the anomalies table.
//!
//! Each runs in a read-only transaction with a statement timeout, on a pool
//! of its own, so a heavy dashboard never holds up ingestion.
//!
//! One file per resource, as `controllers/` has: [`analytics`] (event
//! counts), [`anomalies`], [`events`], [`users`], [`summary`]; this one
//! [`reader`] holds the reader, its transaction, and the helpers they
//! share.

mod analytics;
mod anomalies;
mod events;
mod reader;
mod summary;
mod users;

pub use anomalies::AnomalyRow;
pub use events::EventRow;
pub use reader::{Analytics, HORIZONS_MAX_AGE, QueryError};
pub use summary::Summary;
pub use users::Profile;
