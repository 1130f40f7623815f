//! `eventpipe status`: is every part up, and how far behind are the workers?
//!
//! [`probe`] finds out; [`report`] says it for people.

mod probe;
mod report;

pub use probe::{
    Database, KafkaStatus, PartitionOffsets, Probe, Service, Status, TopicStatus, status, warnings,
};
