//! The integration tests of the storage crate, in one binary, against the
//! PostgreSQL at 127.0.0.1:5432 (or `EVENTPIPE_TEST_DATABASE_SERVER`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod migration;
mod schema;
mod scratch;

/// The server tests make their databases on.
fn server() -> String {
    std::env::var("EVENTPIPE_TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}
