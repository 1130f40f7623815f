//! Rejected events kept for debugging (`API_INVALID_TOPIC`): each event of
//! a 422 answer that broke the contract goes to that topic as it was sent,
//! with its errors, the problem the client got, when, the request id and
//! a hash of the API key (never the key). Keeping them never delays or
//! changes the client's answer: messages are handed to a producer of their
//! own, with a queue of its own (`API_INVALID_QUEUE_MAX_MESSAGES`) so they
//! cannot crowd out accepted events; when it is full they are dropped and
//! counted, as are those Kafka does not acknowledge.

use chrono::{DateTime, Utc};
use prometheus::{IntCounter, IntCounterVec};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::{InvalidTopic, KafkaConfig};
use crate::error::EventError;
use crate::metrics::Metrics;
use eventpipe_service::kafka as kafka_client;

/// Counts what Kafka acknowledged and what it did not.
struct Counting {
    kept: IntCounter,
    dropped: IntCounterVec,
}

impl ClientContext for Counting {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        kafka_client::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka_client::error(&error, reason);
    }
}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.kept.inc(),
            Err(_) => self.dropped.with_label_values(&["not_acknowledged"]).inc(),
        }
    }
}

/// One kept event, as it goes on the topic.
#[derive(Serialize)]
struct Kept<'a> {
    /// The event as the client sent it.
    event: &'a RawValue,
    /// Its position in the request.
    index: usize,
    /// What is wrong with it.
    errors: Vec<&'a EventError>,
    /// The problem document's type, status and detail the client got.
    problem: Problem<'a>,
    received_at: DateTime<Utc>,
    request_id: &'a str,
    /// The first 16 hex digits of the SHA-256 of the API key used (absent
    /// when the API is open).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_sha256_prefix: Option<&'a str>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: &'a str,
    status: u16,
    detail: &'a str,
}

/// What a rejected request was, for [`InvalidSink::keep`].
pub struct Rejected<'a> {
    /// Every event of the request, as sent.
    pub events: &'a [&'a RawValue],
    /// Every error found, by event index.
    pub errors: &'a [EventError],
    /// The problem's type URI.
    pub problem_type: &'a str,
    /// The problem's detail.
    pub detail: &'a str,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// Its request id.
    pub request_id: &'a str,
    /// The API key's hash prefix, if a key was used.
    pub key_sha256_prefix: Option<&'a str>,
}

/// The producer for `API_INVALID_TOPIC`.
pub struct InvalidSink {
    producer: ThreadedProducer<Counting>,
    topic: String,
    dropped: IntCounterVec,
}

impl InvalidSink {
    /// Creates the producer (its own queue of `invalid.queue_max_messages`).
    pub fn new(
        kafka: &KafkaConfig,
        invalid: &InvalidTopic,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let producer = crate::sink::producer_config(kafka, invalid.queue_max_messages)
            .create_with_context(Counting {
                kept: metrics.invalid_kept.clone(),
                dropped: metrics.invalid_dropped.clone(),
            })
            .map_err(|e| anyhow::anyhow!("creating the producer for API_INVALID_TOPIC: {e}"))?;
        Ok(InvalidSink {
            producer,
            topic: invalid.topic.clone(),
            dropped: metrics.invalid_dropped.clone(),
        })
    }

    /// Waits up to `timeout` for the kept events still queued (at once
    /// when none is: the function flushes after every request).
    pub async fn flush(&self, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        if self.producer.in_flight_count() == 0 {
            return;
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }

    /// Hands each invalid event of `rejected` to the producer, without
    /// waiting for anything.
    pub fn keep(&self, rejected: &Rejected<'_>) {
        let mut value = Vec::with_capacity(512);
        for (index, event) in rejected.events.iter().enumerate() {
            let errors: Vec<&EventError> = rejected
                .errors
                .iter()
                .filter(|e| e.index == index)
                .collect();
            if errors.is_empty() {
                continue;
            }
            let kept = Kept {
                event,
                index,
                errors,
                problem: Problem {
                    problem_type: rejected.problem_type,
                    status: 422,
                    detail: rejected.detail,
                },
                received_at: rejected.received_at,
                request_id: rejected.request_id,
                key_sha256_prefix: rejected.key_sha256_prefix,
            };
            value.clear();
            // Serializing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut value, &kept);
            let record: BaseRecord<'_, [u8], [u8], ()> =
                BaseRecord::to(&self.topic).payload(value.as_slice());
            if let Err((error, _)) = self.producer.send(record) {
                let reason = match error.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::QueueFull) => "queue_full",
                    _ => "not_acknowledged",
                };
                self.dropped.with_label_values(&[reason]).inc();
            }
        }
    }
}
