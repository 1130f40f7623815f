//! The integration tests of the worker, in one binary: one link (of
//! librdkafka and everything else) instead of one per file, and tests of
//! every file share the process's thread pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod anomalies;
mod dead_letters;
mod duplicates;
mod end_to_end;
mod function;
mod grafana;
mod group_health;
mod interrupted;
mod openapi;
mod outage;
mod partitions;
mod read_api;
mod rebalance;
mod retention;
mod startup;
mod support;
