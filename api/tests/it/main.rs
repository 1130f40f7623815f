//! The integration tests of the ingestion API, in one binary: one link (of
//! librdkafka and everything else) instead of one per file, and tests of
//! every file share the process's thread pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod broker_failure;
mod function;
mod ingest;
mod invalid;
mod openapi;
mod overload;
mod producer_health;
mod rejections;
mod shutdown;
mod startup;
mod stored_bound;
mod support;
