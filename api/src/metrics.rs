//! Prometheus metrics of the API. Metric names are the constants below, the
//! one place they are spelled; each server owns its own registry, so several
//! servers (tests, the local launcher) can share a process.

use eventpipe_service::http::observe::HttpMetrics;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// HTTP requests by route, method and status.
pub const HTTP_REQUESTS_TOTAL: &str = "eventpipe_api_http_requests_total";
/// HTTP request latency by route, method and status.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "eventpipe_api_http_request_duration_seconds";
/// Events found in requests that got as far as being parsed.
pub const EVENTS_RECEIVED_TOTAL: &str = "eventpipe_api_events_received_total";
/// Events Kafka acknowledged.
pub const EVENTS_ACCEPTED_TOTAL: &str = "eventpipe_api_events_accepted_total";
/// Events Kafka acknowledged, by type: the known types, and `other` for
/// the rest (a bounded label, whatever clients send).
pub const EVENTS_ACCEPTED_BY_TYPE_TOTAL: &str = "eventpipe_api_events_accepted_by_type_total";
/// Events rejected, by reason (the problem type slug).
pub const EVENTS_REJECTED_TOTAL: &str = "eventpipe_api_events_rejected_total";
/// Time from handing a request's events to the producer until Kafka acknowledged all.
pub const KAFKA_PRODUCE_DURATION_SECONDS: &str = "eventpipe_api_kafka_produce_duration_seconds";
/// Events Kafka did not acknowledge, by kind of failure.
pub const KAFKA_PRODUCE_ERRORS_TOTAL: &str = "eventpipe_api_kafka_produce_errors_total";
/// Messages in the producer's queue, not yet acknowledged.
pub const KAFKA_PRODUCER_QUEUE_MESSAGES: &str = "eventpipe_api_kafka_producer_queue_messages";
/// The producer queue's limit (`KAFKA_QUEUE_MAX_MESSAGES`), beside its depth.
pub const KAFKA_PRODUCER_QUEUE_MAX_MESSAGES: &str =
    "eventpipe_api_kafka_producer_queue_max_messages";
/// Producers replaced by a new one, by reason (the counter lives with the
/// producer, in `sink`).
pub const KAFKA_PRODUCER_RECREATED_TOTAL: &str = "eventpipe_api_kafka_producer_recreated_total";
/// 1 when the last broker probe succeeded and the producer can deliver.
pub const KAFKA_READY: &str = "eventpipe_api_kafka_ready";
/// Rejected events Kafka acknowledged on `API_INVALID_TOPIC`.
pub const INVALID_EVENTS_KEPT_TOTAL: &str = "eventpipe_api_invalid_events_kept_total";
/// Rejected events not kept on `API_INVALID_TOPIC`, by reason
/// (`queue_full`, `not_acknowledged`).
pub const INVALID_EVENTS_DROPPED_TOTAL: &str = "eventpipe_api_invalid_events_dropped_total";

/// Per partition of the events topic: bytes this replica charged for
/// events the workers have not committed (`API_MAX_BACKLOG_BYTES`).
pub const BACKLOG_BYTES: &str = "eventpipe_api_backlog_bytes";
/// What [`BACKLOG_BYTES`] may reach on a partition: the bound less the
/// room kept free.
pub const BACKLOG_LIMIT_BYTES: &str = "eventpipe_api_backlog_limit_bytes";
/// Per partition of the events topic: messages the workers have not
/// committed, as last read (with any backlog bound set).
pub const BACKLOG_MESSAGES: &str = "eventpipe_api_backlog_messages";
/// `API_MAX_BACKLOG_MESSAGES`, beside [`BACKLOG_MESSAGES`].
pub const BACKLOG_LIMIT_MESSAGES: &str = "eventpipe_api_backlog_limit_messages";
/// Events refused (503 `overloaded`) because the workers' backlog is at a
/// bound, by bound (`bytes`, `messages`).
pub const BACKLOG_REFUSED_EVENTS_TOTAL: &str = "eventpipe_api_backlog_refused_events_total";

/// The `type` label of accepted events of a type that is not known.
pub const OTHER_TYPE: &str = "other";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The API's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_DURATION_SECONDS`].
    pub http: HttpMetrics,
    /// See [`EVENTS_RECEIVED_TOTAL`].
    pub events_received: IntCounter,
    /// See [`EVENTS_ACCEPTED_TOTAL`].
    pub events_accepted: IntCounter,
    /// See [`EVENTS_ACCEPTED_BY_TYPE_TOTAL`].
    pub events_accepted_by_type: IntCounterVec,
    /// See [`EVENTS_REJECTED_TOTAL`].
    pub events_rejected: IntCounterVec,
    /// See [`KAFKA_PRODUCE_DURATION_SECONDS`].
    pub produce_duration: HistogramVec,
    /// See [`KAFKA_PRODUCE_ERRORS_TOTAL`].
    pub produce_errors: IntCounterVec,
    /// See [`KAFKA_PRODUCER_QUEUE_MESSAGES`].
    pub producer_queue: IntGauge,
    /// See [`KAFKA_PRODUCER_QUEUE_MAX_MESSAGES`].
    pub producer_queue_max: IntGauge,
    /// See [`KAFKA_READY`].
    pub kafka_ready: IntGauge,
    /// See [`INVALID_EVENTS_KEPT_TOTAL`].
    pub invalid_kept: IntCounter,
    /// See [`INVALID_EVENTS_DROPPED_TOTAL`].
    pub invalid_dropped: IntCounterVec,
    /// See [`BACKLOG_BYTES`].
    pub backlog_bytes: IntGaugeVec,
    /// See [`BACKLOG_LIMIT_BYTES`].
    pub backlog_limit_bytes: IntGauge,
    /// See [`BACKLOG_MESSAGES`].
    pub backlog_messages: IntGaugeVec,
    /// See [`BACKLOG_LIMIT_MESSAGES`].
    pub backlog_limit_messages: IntGauge,
    /// See [`BACKLOG_REFUSED_EVENTS_TOTAL`].
    pub backlog_refused: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let metrics = Metrics {
            http: HttpMetrics::new(HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS)?,
            events_received: IntCounter::new(
                EVENTS_RECEIVED_TOTAL,
                "Events received in parsed requests",
            )?,
            events_accepted: IntCounter::new(
                EVENTS_ACCEPTED_TOTAL,
                "Events acknowledged by Kafka",
            )?,
            events_accepted_by_type: IntCounterVec::new(
                Opts::new(
                    EVENTS_ACCEPTED_BY_TYPE_TOTAL,
                    "Events acknowledged by Kafka, by type (known types, else other)",
                ),
                &["type"],
            )?,
            events_rejected: IntCounterVec::new(
                Opts::new(EVENTS_REJECTED_TOTAL, "Events rejected, by reason"),
                &["reason"],
            )?,
            produce_duration: HistogramVec::new(
                HistogramOpts::new(
                    KAFKA_PRODUCE_DURATION_SECONDS,
                    "Time for Kafka to acknowledge all events of a request",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["outcome"],
            )?,
            produce_errors: IntCounterVec::new(
                Opts::new(
                    KAFKA_PRODUCE_ERRORS_TOTAL,
                    "Events Kafka did not acknowledge, by kind",
                ),
                &["kind"],
            )?,
            producer_queue: IntGauge::new(
                KAFKA_PRODUCER_QUEUE_MESSAGES,
                "Messages awaiting Kafka acknowledgement",
            )?,
            producer_queue_max: IntGauge::new(
                KAFKA_PRODUCER_QUEUE_MAX_MESSAGES,
                "Most messages the producer queue holds (KAFKA_QUEUE_MAX_MESSAGES)",
            )?,
            kafka_ready: IntGauge::new(
                KAFKA_READY,
                "1 when Kafka answered the last probe and the producer can deliver (what /ready reports)",
            )?,
            invalid_kept: IntCounter::new(
                INVALID_EVENTS_KEPT_TOTAL,
                "Rejected events kept on API_INVALID_TOPIC",
            )?,
            invalid_dropped: IntCounterVec::new(
                Opts::new(
                    INVALID_EVENTS_DROPPED_TOTAL,
                    "Rejected events not kept on API_INVALID_TOPIC, by reason",
                ),
                &["reason"],
            )?,
            backlog_bytes: IntGaugeVec::new(
                Opts::new(
                    BACKLOG_BYTES,
                    "Bytes charged for this replica's events the workers have not committed, by partition (API_MAX_BACKLOG_BYTES)",
                ),
                &["partition"],
            )?,
            backlog_limit_bytes: IntGauge::new(
                BACKLOG_LIMIT_BYTES,
                "What the charged bytes may reach on a partition: API_MAX_BACKLOG_BYTES less the room kept free (0: no byte bound)",
            )?,
            backlog_messages: IntGaugeVec::new(
                Opts::new(
                    BACKLOG_MESSAGES,
                    "Messages the workers have not committed, by partition, as last read",
                ),
                &["partition"],
            )?,
            backlog_limit_messages: IntGauge::new(
                BACKLOG_LIMIT_MESSAGES,
                "API_MAX_BACKLOG_MESSAGES (0: no message bound)",
            )?,
            backlog_refused: IntCounterVec::new(
                Opts::new(
                    BACKLOG_REFUSED_EVENTS_TOTAL,
                    "Events refused with 503 because the workers' backlog is at a bound, by bound",
                ),
                &["bound"],
            )?,
            registry,
        };
        let mut collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.events_received.clone()),
            Box::new(metrics.events_accepted.clone()),
            Box::new(metrics.events_accepted_by_type.clone()),
            Box::new(metrics.events_rejected.clone()),
            Box::new(metrics.produce_duration.clone()),
            Box::new(metrics.produce_errors.clone()),
            Box::new(metrics.producer_queue.clone()),
            Box::new(metrics.producer_queue_max.clone()),
            Box::new(metrics.kafka_ready.clone()),
            Box::new(metrics.invalid_kept.clone()),
            Box::new(metrics.invalid_dropped.clone()),
            Box::new(metrics.backlog_bytes.clone()),
            Box::new(metrics.backlog_limit_bytes.clone()),
            Box::new(metrics.backlog_messages.clone()),
            Box::new(metrics.backlog_limit_messages.clone()),
            Box::new(metrics.backlog_refused.clone()),
        ];
        // Every bound's series exists from the start, at 0.
        for bound in ["bytes", "messages"] {
            metrics.backlog_refused.with_label_values(&[bound]);
        }
        // Every type's series exists from the start, at 0.
        for kind in eventpipe_contract::KNOWN_TYPES.iter().chain(&[OTHER_TYPE]) {
            metrics.events_accepted_by_type.with_label_values(&[kind]);
        }
        collectors.extend(metrics.http.collectors());
        eventpipe_service::metrics::register_all(&metrics.registry, collectors)?;
        Ok(metrics)
    }

    /// Counts `types` (one per accepted event) by type, unknown ones as
    /// [`OTHER_TYPE`].
    pub fn count_accepted<'a>(&self, types: impl Iterator<Item = &'a str>) {
        let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for kind in types {
            let label = if eventpipe_contract::KNOWN_TYPES.contains(&kind) {
                kind
            } else {
                OTHER_TYPE
            };
            *counts.entry(label).or_default() += 1;
        }
        for (label, n) in counts {
            self.events_accepted_by_type
                .with_label_values(&[label])
                .inc_by(n);
        }
    }

    /// Registers a collector made elsewhere (the producer's replacements
    /// counter, which lives with the producer).
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        eventpipe_service::metrics::render(&self.registry)
    }
}
