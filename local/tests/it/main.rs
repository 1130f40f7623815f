//! The integration tests of the local pipeline and the deploy files, in one binary: one link (of
//! librdkafka and everything else) instead of one per file, and tests of
//! every file share the process's thread pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compose;
mod layout;
mod readme;
mod superset;
