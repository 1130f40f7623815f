//! The worker's one door to Kafka: the consumer of the events topic, whose
//! offsets are committed only when the caller says the batch is durable,
//! and the producer that puts poison messages on the dead-letter topic.
//! Nothing else in the worker imports rdkafka.
//!
//! [`context`] is what librdkafka calls back into (logs, rebalances, the
//! positions to check); [`received`] is a message as the worker holds it.

mod context;
mod received;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use eventpipe_contract::kafka;
use eventpipe_service::kafka as kafka_client;
use eventpipe_service::producer_health::{HealingProducer, ProducerHealth, SendOutcome};
use eventpipe_service::telemetry::TraceHeaders;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::WorkerConfig;
use crate::metrics::Metrics;
use eventpipe_anomaly::Anomaly;

pub use eventpipe_contract::kafka::{
    HEADER_DLQ_ERROR, HEADER_DLQ_REASON, HEADER_DLQ_SOURCE_OFFSET, HEADER_DLQ_SOURCE_PARTITION,
    HEADER_DLQ_SOURCE_TOPIC,
};

pub use context::SourceContext;
pub use received::{Received, Record};

/// The events consumer, and the producer for the DLQ and anomalies topics.
pub struct Source {
    consumer: StreamConsumer<SourceContext>,
    /// Reads the group's committed offsets and the partitions' ends on
    /// connections of its own: it has the group's id but never joins, so
    /// it answers while the member waits in a rebalance.
    watcher: BaseConsumer,
    /// Produces to the DLQ and the anomalies topic; replaced when it can no
    /// longer deliver.
    producer: HealingProducer<FutureProducer>,
    events_topic: String,
    dlq_topic: String,
    anomalies_topic: String,
}

pub use eventpipe_service::kafka::PartitionLag;

fn client_config(config: &WorkerConfig) -> ClientConfig {
    kafka_client::client_config(
        &config.kafka.bootstrap_servers,
        "eventpipe-worker",
        &config.kafka.properties,
    )
}

impl Source {
    /// Creates the consumer (not yet in the group: [`Source::join`]) and the
    /// producer for the DLQ and anomalies topics.
    pub fn new(config: &WorkerConfig, metrics: Metrics) -> anyhow::Result<Self> {
        let consumer: StreamConsumer<SourceContext> = client_config(config)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(SourceContext::new(metrics))
            .context("creating the Kafka consumer (check KAFKA_CONFIG)")?;
        let watcher = client_config(config)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the Kafka client that watches the group's lag")?;
        let mut settings = client_config(config);
        settings
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000");
        let producer = HealingProducer::new(
            move || settings.create(),
            config.producer_health,
            crate::metrics::KAFKA_PRODUCER_RECREATED_TOTAL,
        )
        .context("creating the producer for the DLQ and anomalies topics")?;
        Ok(Source {
            consumer,
            watcher,
            producer,
            events_topic: config.events_topic.clone(),
            dlq_topic: config.dlq_topic.clone(),
            anomalies_topic: config.anomalies_topic.clone(),
        })
    }

    /// A handle on the producer in use (for [`crate::dead_letters`]).
    pub fn producer(&self) -> FutureProducer {
        self.producer.get()
    }

    /// What the producer's recent sends say about it.
    pub fn producer_health(&self) -> &ProducerHealth {
        self.producer.health()
    }

    /// Replaces the producer when its record calls for it.
    pub fn heal_producer(&self) {
        self.producer.heal();
    }

    /// Notes how a send through `producer` ended.
    fn settle(&self, producer: FutureProducer, result: &Result<(), KafkaError>) {
        match result {
            Ok(()) => self.producer.settle(producer, SendOutcome::Delivered, &""),
            Err(error) => self
                .producer
                .settle(producer, SendOutcome::of_error(error), error),
        }
    }

    /// How many partitions this worker holds.
    pub fn assigned_partitions(&self) -> usize {
        self.consumer
            .assignment()
            .map_or(0, |assignment| assignment.count())
    }

    /// The group's lag on every partition of the events topic, from the
    /// broker: its committed offsets against the partitions' ends,
    /// whichever member holds them, or none. Blocks.
    pub fn group_lag(&self, timeout: Duration) -> Result<Vec<PartitionLag>, KafkaError> {
        kafka_client::group_lag(&self.watcher, &self.events_topic, timeout)
    }

    /// Joins the consumer group (subscribes to the events topic), once the
    /// topic exists: a member that joins before the topic is made is
    /// assigned nothing until its next metadata refresh (23 s seen against
    /// tansu), while the lag grows.
    pub fn join(&self) -> anyhow::Result<()> {
        self.consumer
            .subscribe(&[&self.events_topic])
            .with_context(|| format!("subscribing to {}", self.events_topic))
    }

    /// Leaves the consumer group and joins it again, for a new assignment.
    pub fn rejoin(&self) -> Result<(), KafkaError> {
        self.consumer.unsubscribe();
        self.consumer.subscribe(&[&self.events_topic])
    }

    /// Waits for the first message, then gathers more until `max` or
    /// `wait` has passed since the first. Also returns
    /// [`Source::revocations`] as it was when the first message arrived:
    /// the batch may commit only if no revoke comes after that. Read then,
    /// not before the wait: rebalances are served by the same polls that
    /// deliver messages, in order, so a revoke (and the assignment after
    /// it) that came while this worker waited idle belongs to before the
    /// batch, whose messages are then all from the new assignment. Counted
    /// before the wait, a batch read right after an idle worker's
    /// reassignment was stored but never committed, and its partitions'
    /// lag stood still until more events came (seen against tansu).
    pub async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<(Vec<Received>, u64), KafkaError> {
        let context = self.consumer.context();
        let read = |m: OwnedMessage| {
            context.read(m.topic(), m.partition(), m.offset());
            Received(m)
        };
        let first = read(self.consumer.recv().await?.detach());
        let revocations = self.revocations();
        let mut batch = Vec::with_capacity(max.min(10_000));
        batch.push(first);
        let deadline = Instant::now() + wait;
        while batch.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(read(m.detach())),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error while filling a batch");
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        Ok((batch, revocations))
    }

    /// How many times partitions were revoked so far. A batch read before a
    /// revoke must not commit after it: the partition's new owner may have
    /// committed further already, and an old commit would move it back.
    pub fn revocations(&self) -> u64 {
        self.consumer.context().revocations.load(Ordering::SeqCst)
    }

    /// Commits, for each partition in `batch`, the offset after its last
    /// message. Call only once everything in `batch` is durable, and only
    /// if [`Source::revocations`] has not moved since the batch was read.
    pub fn commit(&self, batch: &[Received]) -> Result<(), KafkaError> {
        let mut next: Vec<(&str, i32, i64)> = Vec::new();
        for Received(m) in batch {
            match next
                .iter_mut()
                .find(|(t, p, _)| *t == m.topic() && *p == m.partition())
            {
                Some(entry) => entry.2 = entry.2.max(m.offset() + 1),
                None => next.push((m.topic(), m.partition(), m.offset() + 1)),
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (topic, partition, offset) in next {
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        // A synchronous commit blocks on the broker's answer.
        tokio::task::block_in_place(|| self.consumer.commit(&offsets, CommitMode::Sync))
    }

    /// Puts `message` on the DLQ with headers naming the error and where it
    /// came from, and waits for Kafka to acknowledge it.
    pub async fn send_to_dlq(
        &self,
        received: &Received,
        reason: &str,
        error: &str,
    ) -> Result<(), KafkaError> {
        let message = &received.0;
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut headers = OwnedHeaders::new_with_capacity(8);
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let headers = headers
            .insert(Header {
                key: HEADER_DLQ_REASON,
                value: Some(reason),
            })
            .insert(Header {
                key: HEADER_DLQ_ERROR,
                value: Some(error),
            })
            .insert(Header {
                key: HEADER_DLQ_SOURCE_TOPIC,
                value: Some(message.topic()),
            })
            .insert(Header {
                key: HEADER_DLQ_SOURCE_PARTITION,
                value: Some(&partition),
            })
            .insert(Header {
                key: HEADER_DLQ_SOURCE_OFFSET,
                value: Some(&offset),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        let producer = self.producer.get();
        let sent = producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map(drop)
            .map_err(|(e, _)| e);
        self.settle(producer, &sent);
        sent
    }

    /// Publishes `anomalies` to the anomalies topic, keyed by user, each
    /// with the trace context of the event that raised it (`traces`, in
    /// the same order; shorter when unknown), and waits until Kafka
    /// acknowledged every one.
    pub async fn publish_anomalies(
        &self,
        anomalies: &[Anomaly],
        traces: &[Option<TraceHeaders>],
    ) -> Result<(), KafkaError> {
        let values: Vec<Vec<u8>> = anomalies
            .iter()
            .map(|a| serde_json::to_vec(a).unwrap_or_default())
            .collect();
        let producer = self.producer.get();
        let sends = anomalies
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(i, (a, value))| {
                let headers = OwnedHeaders::new_with_capacity(4)
                    .insert(Header {
                        key: kafka::HEADER_SCHEMA_VERSION,
                        value: Some(kafka::SCHEMA_VERSION),
                    })
                    .insert(Header {
                        key: kafka::HEADER_CONTENT_TYPE,
                        value: Some("application/json"),
                    });
                let headers =
                    kafka_client::with_trace(headers, traces.get(i).and_then(Option::as_ref));
                let record = FutureRecord::to(&self.anomalies_topic)
                    .key(a.user_id.as_bytes())
                    .payload(value.as_slice())
                    .headers(headers);
                producer.send(record, Timeout::After(Duration::from_secs(10)))
            });
        let sent = futures::future::join_all(sends)
            .await
            .into_iter()
            .try_for_each(|sent| sent.map(drop).map_err(|(e, _)| e));
        self.settle(producer, &sent);
        sent
    }

    /// Makes sure the topics the worker needs exist (the events topic, the
    /// DLQ and, with rules, the anomalies topic), creating the missing ones
    /// when `KAFKA_CREATE_TOPICS` allows; fails, naming the variable to fix,
    /// when no broker answers within `timeout` or a topic cannot be had.
    pub async fn ensure_topics(
        &self,
        config: &WorkerConfig,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let topics = &config.topics;
        let needed = config.needed_topics();
        kafka_client::ensure_topics(
            &client_config(config),
            &needed,
            topics.creation.replication_factor,
            topics.creation.create,
            timeout,
            &config.kafka.bootstrap_servers,
        )
        .await
        .map(drop)
    }

    /// Waits, up to `within`, for a broker the cluster named to answer
    /// the producer, so it has its id before the first dead letter or
    /// anomaly ([`kafka_client::await_brokers`]). Blocks.
    pub fn await_brokers(&self, within: Duration) {
        let producer = self.producer.get();
        kafka_client::await_brokers(
            rdkafka::producer::Producer::client(&producer),
            &self.dlq_topic,
            within,
        );
    }

    /// Whether a broker answers a metadata request and knows `topics`.
    /// Blocks.
    pub fn probe(&self, topics: &[&str], timeout: Duration) -> kafka_client::Reach {
        kafka_client::reach(
            self.consumer.fetch_metadata(None, Timeout::After(timeout)),
            topics,
        )
    }
}
