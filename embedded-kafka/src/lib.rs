//! A Kafka cluster inside this process: librdkafka's mock cluster, which
//! speaks the Kafka protocol on loopback sockets. The local run and the tests
//! start one and hand its bootstrap address to the services, which connect
//! to it as to any broker and cannot tell the difference.
//!
//! The mock keeps everything in memory and does not implement the
//! CreateTopics API, so topics are created here, on the cluster directly.
//! It keeps only the newest [`KEEPS_BYTES_PER_PARTITION`] of each
//! partition, deleting older batches whether anyone read them or not.

use std::time::Duration;

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
pub use rdkafka::types::{RDKafkaApiKey as ApiKey, RDKafkaRespErr as ResponseError};

/// What the cluster keeps of each partition: the newest 5 MiB of record
/// batches (and at most 100,000 batches), fixed in librdkafka's mock
/// (`rdkafka_mock.c`, no setting changes it). Older batches are deleted
/// as new ones arrive, read or not: the local run bounds the workers'
/// backlog below this (`API_MAX_BACKLOG_BYTES`).
pub const KEEPS_BYTES_PER_PARTITION: u64 = 5 * 1024 * 1024;

/// A running in-process cluster; stops when dropped.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: i32,
}

impl EmbeddedKafka {
    /// Starts a cluster of `brokers` brokers on ephemeral loopback ports.
    pub fn start(brokers: i32) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(brokers).context("starting the embedded Kafka cluster")?;
        Ok(EmbeddedKafka { cluster, brokers })
    }

    /// The `host:port,...` list clients connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` partitions, replicated on every broker.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.cluster
            .create_topic(topic, partitions, self.brokers)
            .with_context(|| format!("creating topic {topic}"))
    }

    /// Takes broker `id` (1-based) down: its connections are closed and it
    /// refuses new ones until [`EmbeddedKafka::broker_up`].
    pub fn broker_down(&self, id: i32) -> anyhow::Result<()> {
        self.cluster
            .broker_down(id)
            .with_context(|| format!("taking broker {id} down"))
    }

    /// Brings broker `id` back.
    pub fn broker_up(&self, id: i32) -> anyhow::Result<()> {
        self.cluster
            .broker_up(id)
            .with_context(|| format!("bringing broker {id} up"))
    }

    /// Takes every broker down.
    pub fn all_down(&self) -> anyhow::Result<()> {
        (1..=self.brokers).try_for_each(|id| self.broker_down(id))
    }

    /// Brings every broker back.
    pub fn all_up(&self) -> anyhow::Result<()> {
        (1..=self.brokers).try_for_each(|id| self.broker_up(id))
    }

    /// Delays every response of broker `id` by `delay`.
    pub fn slow_broker(&self, id: i32, delay: Duration) -> anyhow::Result<()> {
        self.cluster
            .broker_round_trip_time(id, delay)
            .with_context(|| format!("slowing broker {id}"))
    }

    /// Makes the next `errors.len()` requests of kind `api` (to any broker)
    /// fail, in order, with these error codes: a broker refusing
    /// produces, fencing a producer, losing a group.
    pub fn fail_requests(&self, api: ApiKey, errors: &[ResponseError]) {
        self.cluster.request_errors(api, errors);
    }

    /// Forgets the errors [`EmbeddedKafka::fail_requests`] queued for `api`
    /// that have not been answered yet.
    pub fn clear_request_errors(&self, api: ApiKey) {
        self.cluster.clear_request_errors(api);
    }
}
