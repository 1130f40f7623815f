//! The API's one door to Kafka: the idempotent `acks=all` producer that puts
//! accepted events on the events topic, topic creation at start-up, and the
//! broker probe behind `/ready`. Nothing else in the API imports rdkafka.
//!
//! The producer is replaced by a new one when it cannot deliver any more
//! (see [`eventpipe_service::producer_health`]): requests that were waiting
//! on the old one get 503, later ones use the new one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use eventpipe_contract::{EventRecord, kafka};
use eventpipe_service::kafka::{self as kafka_client, PartitionLag};
use eventpipe_service::producer_health::{
    HealingProducer, ProducerHealth, RebuildReason, SendOutcome,
};
use eventpipe_service::telemetry::TraceHeaders;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use tokio::sync::oneshot;

use crate::config::KafkaConfig;

/// The acknowledgements of one request, filled in by delivery callbacks on
/// the producer's polling thread. One aggregate per request, so a batch of
/// 100 wakes its request once, not 100 times.
struct Acks {
    state: Mutex<AckState>,
}

struct AckState {
    outstanding: usize,
    delivered: Vec<Option<Delivered>>,
    first_failure: Option<FailureKind>,
    failed: usize,
    done: Option<oneshot::Sender<()>>,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What travels with each message to its delivery callback.
struct Pending {
    acks: Arc<Acks>,
    index: usize,
}

/// Routes logs into `tracing` and acknowledgements into their request's [`Acks`].
struct AckContext;

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        kafka_client::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka_client::error(&error, reason);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let mut state = pending.acks.lock();
        match result {
            Ok(message) => {
                state.delivered[pending.index] = Some(Delivered {
                    partition: message.partition(),
                    offset: message.offset(),
                });
            }
            Err((error, _)) => {
                state.failed += 1;
                state.first_failure.get_or_insert(FailureKind::of(error));
            }
        }
        state.outstanding = state.outstanding.saturating_sub(1);
        if state.outstanding == 0
            && let Some(done) = state.done.take()
        {
            let _ = done.send(());
        }
    }
}

/// Where Kafka put an acknowledged event.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset within that partition.
    pub offset: i64,
}

/// Why Kafka did not acknowledge an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The producer's queue is full: Kafka is slower than the intake.
    QueueFull,
    /// No acknowledgement within `KAFKA_MESSAGE_TIMEOUT_MS`.
    TimedOut,
    /// The broker refused the message as too large.
    TooLarge,
    /// The producer was replaced (after a fatal error or a run of
    /// refusals) before the message was acknowledged.
    Replaced,
    /// Any other broker or client error.
    Broker,
}

impl FailureKind {
    /// Label for the produce-errors metric.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::QueueFull => "queue_full",
            FailureKind::TimedOut => "timed_out",
            FailureKind::TooLarge => "too_large",
            FailureKind::Replaced => "replaced",
            FailureKind::Broker => "broker",
        }
    }

    /// What this failure says about the producer's health.
    fn outcome(self) -> SendOutcome {
        match self {
            FailureKind::TimedOut => SendOutcome::TimedOut,
            FailureKind::Broker => SendOutcome::Refused,
            FailureKind::QueueFull | FailureKind::TooLarge | FailureKind::Replaced => {
                SendOutcome::Local
            }
        }
    }

    fn of(error: &KafkaError) -> Self {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => FailureKind::QueueFull,
            Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                FailureKind::TimedOut
            }
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
                FailureKind::TooLarge
            }
            Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight) => {
                FailureKind::Replaced
            }
            _ => FailureKind::Broker,
        }
    }
}

/// Some events of a request were not acknowledged.
#[derive(Debug)]
pub struct SendError {
    /// The first failure's kind.
    pub kind: FailureKind,
    /// How many events of the request were not acknowledged (or not enqueued).
    pub failed: usize,
}

/// The media type of every value on the events topic.
const JSON: &str = "application/json";

/// A request's events serialized for the events topic (see
/// [`EventSink::prepare`]), with what the backlog is charged for them.
pub struct Outgoing<'r> {
    events: &'r [EventRecord<'r>],
    /// Every event's value, one after the other.
    values: Vec<u8>,
    /// Where each event's value ends in `values`.
    ends: Vec<usize>,
    headers: Vec<OwnedHeaders>,
    /// Per event, the partition chosen for it, when the API places events.
    pub partitions: Option<Vec<i32>>,
    /// Per event, the most it can take in its partition's log
    /// ([`kafka_client::stored_bytes_bound`]).
    pub stored_bytes: Vec<u64>,
}

impl Outgoing<'static> {
    /// Events known only by their placement and charges, for the
    /// backlog's own tests.
    #[cfg(test)]
    pub(crate) fn charged(partitions: Vec<i32>, stored_bytes: Vec<u64>) -> Self {
        Outgoing {
            events: &[],
            values: Vec::new(),
            ends: Vec::new(),
            headers: Vec::new(),
            partitions: Some(partitions),
            stored_bytes,
        }
    }
}

/// What became of the events handed to [`EventSink::send`].
#[derive(Debug)]
pub struct Sent {
    /// Per event, where Kafka put it, when it acknowledged it.
    pub delivered: Vec<Option<Delivered>>,
    /// How many events, from the first, reached the producer; the others
    /// were never sent. An enqueued event without a delivery may yet be
    /// stored (the answer to a refused send does not wait for those).
    pub enqueued: usize,
    /// Why not every event was acknowledged, when not.
    pub failure: Option<SendError>,
}

impl Sent {
    /// Where every event went, or why not every one was acknowledged.
    pub fn into_result(self) -> Result<Vec<Delivered>, SendError> {
        match self.failure {
            None => Ok(self.delivered.into_iter().flatten().collect()),
            Some(failure) => Err(failure),
        }
    }
}

/// The partition of `partitions` that librdkafka's default partitioner
/// (`consistent_random`) picks for a non-empty `key`: its CRC-32, modulo
/// the count. Placing events this way keeps each user's events where they
/// went before the API placed them itself.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    let count = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(crc32fast::hash(key) % count).unwrap_or(0)
}

/// Produces events to the events topic.
pub struct EventSink {
    /// The producer in use; replaced when it can no longer deliver.
    producer: HealingProducer<ThreadedProducer<AckContext>>,
    topic: String,
    /// `KAFKA_COMPRESSION`, which bounds what an event takes in the log.
    compression: String,
}

/// The largest batch of records the API's producers send to a partition
/// (librdkafka's `batch.size`, framing included; an event larger than this
/// goes alone): the backlog bound keeps one batch of room, since a broker
/// deletes batches whole ([`crate::backlog`]).
pub const BATCH_BYTES: u64 = 64 * 1024;

/// The settings of every API producer: `acks=all`, idempotent, the
/// configured compression and linger, a queue of `queue_max_messages`.
pub(crate) fn producer_config(config: &KafkaConfig, queue_max_messages: u32) -> ClientConfig {
    let mut client = client_config(config);
    client
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", &config.compression)
        .set("linger.ms", config.linger_ms.to_string())
        .set("batch.size", BATCH_BYTES.to_string())
        .set(
            "queue.buffering.max.messages",
            queue_max_messages.to_string(),
        );
    client
}

/// The settings every API client starts from.
pub(crate) fn client_config(config: &KafkaConfig) -> ClientConfig {
    let connection = &config.connection;
    kafka_client::client_config(
        &connection.bootstrap_servers,
        "eventpipe-api",
        &connection.properties,
    )
}

impl EventSink {
    /// Creates the producer. Connecting happens in the background; see
    /// [`EventSink::ensure_topic`] and [`EventSink::probe`].
    pub fn new(config: &KafkaConfig) -> anyhow::Result<Self> {
        let mut settings = producer_config(config, config.queue_max_messages);
        settings
            .set(
                "message.timeout.ms",
                config.message_timeout.as_millis().to_string(),
            )
            .set("queue.buffering.max.kbytes", "1048576");
        let producer = HealingProducer::new(
            move || settings.create_with_context(AckContext),
            config.health,
            crate::metrics::KAFKA_PRODUCER_RECREATED_TOTAL,
        )
        .context("creating the Kafka producer (check KAFKA_CONFIG and KAFKA_COMPRESSION)")?;
        Ok(EventSink {
            producer,
            topic: config.events_topic.clone(),
            compression: config.compression.clone(),
        })
    }

    /// What the producer's recent sends say about it.
    pub fn health(&self) -> &ProducerHealth {
        self.producer.health()
    }

    /// Replaces the producer when its record calls for it; why, when it
    /// did. Requests still waiting on the old one get 503, never 202, and
    /// a client retrying them with the same event ids is safe.
    pub fn heal(&self) -> Option<RebuildReason> {
        self.producer.heal()
    }

    /// Makes sure the events topic exists: when the broker does not know
    /// it, creates it (if allowed) and checks again. Fails when Kafka cannot
    /// be reached within a few seconds or the topic cannot be had.
    pub async fn ensure_topic(&self, config: &KafkaConfig) -> anyhow::Result<()> {
        let partitions = self
            .ensure_named(
                config,
                &self.topic,
                config.events_partitions,
                eventpipe_service::settings::kafka::EVENTS_TOPIC.name,
            )
            .await?;
        if i32::try_from(partitions).ok() != Some(config.events_partitions) {
            tracing::warn!(
                topic = %self.topic,
                partitions,
                configured = config.events_partitions,
                "topic exists with a different partition count than KAFKA_EVENTS_PARTITIONS"
            );
        }
        Ok(())
    }

    /// Makes sure `topic` (named by variable `var`) exists, creating it
    /// with `partitions` when the broker does not know it and creating is
    /// allowed; its partition count.
    pub async fn ensure_named(
        &self,
        config: &KafkaConfig,
        topic: &str,
        partitions: i32,
        var: &'static str,
    ) -> anyhow::Result<usize> {
        let counts = kafka_client::ensure_topics(
            &client_config(config),
            &[kafka_client::NeededTopic {
                name: topic,
                var,
                partitions,
            }],
            config.topics.replication_factor,
            config.topics.create,
            config.connection.connect_timeout,
            &config.connection.bootstrap_servers,
        )
        .await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// Waits, up to `within`, for a broker the cluster named to answer,
    /// so the producer has its id before the first request
    /// ([`eventpipe_service::kafka::await_brokers`]).
    pub async fn await_brokers(&self, within: Duration) {
        let producer = self.producer.get();
        let topic = self.topic.clone();
        let _ = tokio::task::spawn_blocking(move || {
            eventpipe_service::kafka::await_brokers(producer.client(), &topic, within);
        })
        .await;
    }

    /// Whether a broker answers a metadata request and knows the events
    /// topic.
    pub async fn probe(&self, timeout: Duration) -> kafka_client::Reach {
        let producer = self.producer.get();
        let name = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&name), Timeout::After(timeout));
            kafka_client::reach(metadata, &[&name])
        })
        .await
        .unwrap_or(kafka_client::Reach::Down)
    }

    /// Messages enqueued but not yet acknowledged.
    pub fn queue_depth(&self) -> i32 {
        self.producer.get().in_flight_count()
    }

    /// Serializes `events` for the events topic (keyed by user id, with
    /// schema-version, request-id and, given `trace`, W3C trace context
    /// headers), placing each on one of `partitions` partitions (by the
    /// CRC-32 of its key, as librdkafka's default partitioner does) when
    /// given, so the backlog can be charged before anything is sent.
    pub fn prepare<'r>(
        &self,
        events: &'r [EventRecord<'r>],
        request_id: &str,
        trace: Option<&TraceHeaders>,
        partitions: Option<i32>,
    ) -> Outgoing<'r> {
        let mut values = Vec::with_capacity(events.len() * 320);
        let mut ends = Vec::with_capacity(events.len());
        let mut stored_bytes = Vec::with_capacity(events.len());
        let mut headers = Vec::with_capacity(events.len());
        for event in events {
            let start = values.len();
            // Serializing a record into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut values, event);
            ends.push(values.len());
            let base = OwnedHeaders::new_with_capacity(5)
                .insert(Header {
                    key: kafka::HEADER_SCHEMA_VERSION,
                    value: Some(kafka::SCHEMA_VERSION),
                })
                .insert(Header {
                    key: kafka::HEADER_REQUEST_ID,
                    value: Some(request_id),
                })
                .insert(Header {
                    key: kafka::HEADER_CONTENT_TYPE,
                    value: Some(JSON),
                });
            let event_headers = kafka_client::with_trace(base, trace);
            stored_bytes.push(kafka_client::stored_bytes_bound(
                event.user_id.len(),
                values.len() - start,
                event_headers
                    .iter()
                    .map(|h| (h.key.len(), h.value.map_or(0, <[u8]>::len))),
                &self.compression,
            ));
            headers.push(event_headers);
        }
        let partitions = partitions.filter(|&n| n > 0).map(|n| {
            events
                .iter()
                .map(|e| partition_of(e.user_id.as_bytes(), n))
                .collect()
        });
        Outgoing {
            events,
            values,
            ends,
            headers,
            partitions,
            stored_bytes,
        }
    }

    /// Produces `outgoing`'s events and waits until Kafka acknowledged
    /// every one, or said it would not.
    pub async fn send(&self, outgoing: Outgoing<'_>) -> Sent {
        let producer = self.producer.get();
        let sent = self.send_with(&producer, outgoing).await;
        match &sent.failure {
            None => self.producer.settle(producer, SendOutcome::Delivered, &""),
            Some(failure) => {
                self.producer
                    .settle(producer, failure.kind.outcome(), &failure.kind.label())
            }
        }
        sent
    }

    async fn send_with(
        &self,
        producer: &ThreadedProducer<AckContext>,
        outgoing: Outgoing<'_>,
    ) -> Sent {
        let Outgoing {
            events,
            values,
            ends,
            headers,
            partitions,
            ..
        } = outgoing;
        let count = events.len();
        let (done, acknowledged) = oneshot::channel();
        let acks = Arc::new(Acks {
            state: Mutex::new(AckState {
                outstanding: count,
                delivered: vec![None; count],
                first_failure: None,
                failed: 0,
                done: Some(done),
            }),
        });
        let mut start = 0;
        for (index, (headers, end)) in headers.into_iter().zip(ends).enumerate() {
            let pending = Box::new(Pending {
                acks: acks.clone(),
                index,
            });
            let mut record = BaseRecord::with_opaque_to(&self.topic, pending)
                .key(events[index].user_id.as_bytes())
                .payload(&values[start..end])
                .headers(headers);
            start = end;
            if let Some(partitions) = &partitions {
                record = record.partition(partitions[index]);
            }
            if let Err((error, _)) = producer.send(record) {
                // Messages never enqueued get no callback: settle them
                // here. Those enqueued before may still be acknowledged:
                // the answer does not wait for them (see `Sent::enqueued`).
                let not_sent = count - index;
                let mut state = acks.lock();
                state.outstanding -= not_sent;
                return Sent {
                    delivered: state.delivered.clone(),
                    enqueued: index,
                    failure: Some(SendError {
                        kind: FailureKind::of(&error),
                        failed: not_sent,
                    }),
                };
            }
        }
        // The callback of the last acknowledgement completes this; librdkafka
        // calls back for every enqueued message within message.timeout.ms.
        let answered = acknowledged.await.is_ok();
        let mut state = acks.lock();
        let failure = match (answered, state.first_failure) {
            (true, None) => None,
            (true, Some(kind)) => Some(SendError {
                kind,
                failed: state.failed,
            }),
            // The producer was dropped before answering.
            (false, _) => Some(SendError {
                kind: FailureKind::Broker,
                failed: state.outstanding,
            }),
        };
        Sent {
            delivered: std::mem::take(&mut state.delivered),
            enqueued: count,
            failure,
        }
    }

    /// Waits up to `timeout` for every queued message to be acknowledged.
    pub async fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        let producer = self.producer.get();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout)))
            .await?
            .context("flushing the Kafka producer")
    }
}

/// Routes a client's logs into `tracing`.
struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        kafka_client::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka_client::error(&error, reason);
    }
}

impl ConsumerContext for LogContext {}

/// Reads the workers' progress on the events topic (their group's
/// committed offsets against the partitions' ends) on a client of its
/// own, which has the group's id but never joins it.
pub struct GroupProgress {
    client: Arc<BaseConsumer<LogContext>>,
    topic: String,
}

impl GroupProgress {
    /// A reader of `group`'s progress.
    pub fn new(config: &KafkaConfig, group: &str) -> anyhow::Result<Self> {
        let client = client_config(config)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create_with_context(LogContext)
            .context("creating the Kafka client that reads the workers' progress")?;
        Ok(GroupProgress {
            client: Arc::new(client),
            topic: config.events_topic.clone(),
        })
    }

    /// Where the group stands on every partition.
    pub async fn read(&self, timeout: Duration) -> anyhow::Result<Vec<PartitionLag>> {
        let client = self.client.clone();
        let topic = self.topic.clone();
        let lags =
            tokio::task::spawn_blocking(move || kafka_client::group_lag(&client, &topic, timeout))
                .await??;
        Ok(lags)
    }
}
