//! Prometheus metrics of the worker. Metric names are the constants below,
//! the one place they are spelled; each worker owns its registry.

use eventpipe_service::http::observe::HttpMetrics;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Messages read from the events topic.
pub const MESSAGES_CONSUMED_TOTAL: &str = "eventpipe_worker_messages_consumed_total";
/// Rows inserted into `events`.
pub const EVENTS_STORED_TOTAL: &str = "eventpipe_worker_events_stored_total";
/// Events skipped because their `event_id` was already stored.
pub const EVENTS_DUPLICATE_TOTAL: &str = "eventpipe_worker_events_duplicate_total";
/// Messages sent to the dead-letter topic, by reason.
pub const DLQ_MESSAGES_TOTAL: &str = "eventpipe_worker_dlq_messages_total";
/// Messages per stored batch.
pub const BATCH_MESSAGES: &str = "eventpipe_worker_batch_messages";
/// Time to write one lane's transaction of a batch (WORKER_WRITE_LANES).
pub const DB_WRITE_DURATION_SECONDS: &str = "eventpipe_worker_db_write_duration_seconds";
/// Batch writes that failed (each retry counts).
pub const DB_WRITE_FAILURES_TOTAL: &str = "eventpipe_worker_db_write_failures_total";
/// Messages behind the end of each partition of the events topic: the high
/// watermark minus the group's committed offset, from the broker, for every
/// partition whoever holds it (0 for an empty one).
pub const CONSUMER_LAG_MESSAGES: &str = "eventpipe_worker_consumer_lag_messages";
/// The DLQ and anomalies producer replaced by a new one, by reason (the
/// counter lives with the producer, in `source`).
pub const KAFKA_PRODUCER_RECREATED_TOTAL: &str = "eventpipe_worker_kafka_producer_recreated_total";
/// Partitions of the events topic this worker holds.
pub const ASSIGNED_PARTITIONS: &str = "eventpipe_worker_assigned_partitions";
/// The longest any partition has had lag without the group's committed
/// offset on it moving.
pub const GROUP_STALLED_SECONDS: &str = "eventpipe_worker_group_stalled_seconds";
/// Times this worker left and rejoined the group because it held nothing
/// while the group stalled.
pub const GROUP_REJOINS_TOTAL: &str = "eventpipe_worker_group_rejoins_total";
/// From `received_at` at the API to the row's commit.
pub const END_TO_END_LATENCY_SECONDS: &str = "eventpipe_worker_end_to_end_latency_seconds";
/// Anomalies detected (and stored), by rule and severity.
pub const ANOMALIES_DETECTED_TOTAL: &str = "eventpipe_worker_anomalies_detected_total";
/// Users whose rule state is in memory.
pub const ANOMALY_STATE_USERS: &str = "eventpipe_worker_anomaly_state_users";
/// Entries remembered by the rules over all users.
pub const ANOMALY_STATE_ENTRIES: &str = "eventpipe_worker_anomaly_state_entries";
/// Anomalies stored but not yet on the topic after a failed publication.
pub const ANOMALY_PUBLISH_FAILURES_TOTAL: &str = "eventpipe_worker_anomaly_publish_failures_total";
/// HTTP requests by route, method and status.
pub const HTTP_REQUESTS_TOTAL: &str = "eventpipe_worker_http_requests_total";
/// HTTP request latency by route, method and status.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "eventpipe_worker_http_request_duration_seconds";
/// Offsets the worker never read because the topic no longer held them.
pub const OFFSETS_SKIPPED_TOTAL: &str = "eventpipe_worker_offsets_skipped_total";
/// From `received_at` at the API to the commit of the anomaly the event
/// raised.
pub const ANOMALY_DETECTION_LATENCY_SECONDS: &str =
    "eventpipe_worker_anomaly_detection_latency_seconds";
/// Anomalies stored but not yet acknowledged on the anomalies topic.
pub const ANOMALY_OUTBOX_MESSAGES: &str = "eventpipe_worker_anomaly_outbox_messages";
/// Maintenance passes (partitions and retention), by outcome: `done`,
/// `failed`, or `skipped` (another worker held the lock).
pub const RETENTION_RUNS_TOTAL: &str = "eventpipe_worker_retention_runs_total";
/// Maintenance passes that failed since the last one that did not.
pub const RETENTION_CONSECUTIVE_FAILURES: &str = "eventpipe_worker_retention_consecutive_failures";
/// When the last pass this worker ran completed (Unix seconds).
pub const RETENTION_LAST_SUCCESS: &str =
    "eventpipe_worker_retention_last_success_timestamp_seconds";
/// Partitions made, by table.
pub const RETENTION_PARTITIONS_CREATED_TOTAL: &str =
    "eventpipe_worker_retention_partitions_created_total";
/// Partitions dropped by retention, by table.
pub const RETENTION_PARTITIONS_DROPPED_TOTAL: &str =
    "eventpipe_worker_retention_partitions_dropped_total";
/// Rows removed by retention (in dropped partitions or deleted), by table.
pub const RETENTION_ROWS_REMOVED_TOTAL: &str = "eventpipe_worker_retention_rows_removed_total";

/// The worker's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`MESSAGES_CONSUMED_TOTAL`].
    pub consumed: IntCounter,
    /// See [`EVENTS_STORED_TOTAL`].
    pub stored: IntCounter,
    /// See [`EVENTS_DUPLICATE_TOTAL`].
    pub duplicates: IntCounter,
    /// See [`DLQ_MESSAGES_TOTAL`].
    pub dlq: IntCounterVec,
    /// See [`BATCH_MESSAGES`].
    pub batch_messages: Histogram,
    /// See [`DB_WRITE_DURATION_SECONDS`].
    pub db_write_duration: Histogram,
    /// See [`DB_WRITE_FAILURES_TOTAL`].
    pub db_write_failures: IntCounter,
    /// See [`CONSUMER_LAG_MESSAGES`].
    pub consumer_lag: IntGaugeVec,
    /// See [`ASSIGNED_PARTITIONS`].
    pub assigned_partitions: IntGauge,
    /// See [`GROUP_STALLED_SECONDS`].
    pub group_stalled: IntGauge,
    /// See [`GROUP_REJOINS_TOTAL`].
    pub group_rejoins: IntCounter,
    /// See [`END_TO_END_LATENCY_SECONDS`].
    pub end_to_end: Histogram,
    /// See [`OFFSETS_SKIPPED_TOTAL`].
    pub offsets_skipped: IntCounterVec,
    /// See [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_DURATION_SECONDS`].
    pub http: HttpMetrics,
    /// See [`ANOMALIES_DETECTED_TOTAL`].
    pub anomalies: IntCounterVec,
    /// See [`ANOMALY_STATE_USERS`].
    pub anomaly_users: IntGauge,
    /// See [`ANOMALY_STATE_ENTRIES`].
    pub anomaly_entries: IntGauge,
    /// See [`ANOMALY_PUBLISH_FAILURES_TOTAL`].
    pub anomaly_publish_failures: IntCounter,
    /// See [`ANOMALY_DETECTION_LATENCY_SECONDS`].
    pub anomaly_detection: Histogram,
    /// See [`ANOMALY_OUTBOX_MESSAGES`].
    pub anomaly_outbox: IntGauge,
    /// See [`RETENTION_RUNS_TOTAL`].
    pub retention_runs: IntCounterVec,
    /// See [`RETENTION_CONSECUTIVE_FAILURES`].
    pub retention_failing: IntGauge,
    /// See [`RETENTION_LAST_SUCCESS`].
    pub retention_last_success: IntGauge,
    /// See [`RETENTION_PARTITIONS_CREATED_TOTAL`].
    pub partitions_created: IntCounterVec,
    /// See [`RETENTION_PARTITIONS_DROPPED_TOTAL`].
    pub partitions_dropped: IntCounterVec,
    /// See [`RETENTION_ROWS_REMOVED_TOTAL`].
    pub rows_removed: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let latency = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        let metrics = Metrics {
            registry: Registry::new(),
            consumed: IntCounter::new(
                MESSAGES_CONSUMED_TOTAL,
                "Messages read from the events topic",
            )?,
            stored: IntCounter::new(EVENTS_STORED_TOTAL, "Rows inserted into events")?,
            duplicates: IntCounter::new(EVENTS_DUPLICATE_TOTAL, "Events already stored, skipped")?,
            dlq: IntCounterVec::new(
                Opts::new(DLQ_MESSAGES_TOTAL, "Messages sent to the DLQ, by reason"),
                &["reason"],
            )?,
            batch_messages: Histogram::with_opts(
                HistogramOpts::new(BATCH_MESSAGES, "Messages per batch").buckets(vec![
                    1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                ]),
            )?,
            db_write_duration: Histogram::with_opts(
                HistogramOpts::new(
                    DB_WRITE_DURATION_SECONDS,
                    "Time to write one lane's transaction of a batch",
                )
                .buckets(latency.clone()),
            )?,
            db_write_failures: IntCounter::new(DB_WRITE_FAILURES_TOTAL, "Failed batch writes")?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    CONSUMER_LAG_MESSAGES,
                    "Messages behind the partition end: high watermark minus the group's committed offset, every partition",
                ),
                &["topic", "partition"],
            )?,
            assigned_partitions: IntGauge::new(
                ASSIGNED_PARTITIONS,
                "Partitions of the events topic this worker holds",
            )?,
            group_stalled: IntGauge::new(
                GROUP_STALLED_SECONDS,
                "The longest any partition of the events topic has had lag without the group's committed offset on it moving, in seconds (0 while all progress)",
            )?,
            group_rejoins: IntCounter::new(
                GROUP_REJOINS_TOTAL,
                "Times this worker rejoined the group because it held no partition while the group stalled",
            )?,
            end_to_end: Histogram::with_opts(
                HistogramOpts::new(
                    END_TO_END_LATENCY_SECONDS,
                    "received_at at the API to stored",
                )
                .buckets(latency.clone()),
            )?,
            offsets_skipped: IntCounterVec::new(
                Opts::new(
                    OFFSETS_SKIPPED_TOTAL,
                    "Offsets never read because the topic no longer held them (events lost to retention)",
                ),
                &["topic", "partition"],
            )?,
            http: HttpMetrics::new(HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS)?,
            anomalies: IntCounterVec::new(
                Opts::new(
                    ANOMALIES_DETECTED_TOTAL,
                    "Anomalies detected, by rule and severity",
                ),
                &["rule", "severity"],
            )?,
            anomaly_users: IntGauge::new(
                ANOMALY_STATE_USERS,
                "Users whose rule state is in memory",
            )?,
            anomaly_entries: IntGauge::new(
                ANOMALY_STATE_ENTRIES,
                "Entries the anomaly rules remember, over all users",
            )?,
            anomaly_publish_failures: IntCounter::new(
                ANOMALY_PUBLISH_FAILURES_TOTAL,
                "Failed publications of anomalies (retried by the sweep)",
            )?,
            anomaly_detection: Histogram::with_opts(
                HistogramOpts::new(
                    ANOMALY_DETECTION_LATENCY_SECONDS,
                    "received_at at the API to the anomaly it raised committed",
                )
                .buckets(latency),
            )?,
            anomaly_outbox: IntGauge::new(
                ANOMALY_OUTBOX_MESSAGES,
                "Anomalies stored, not yet on the anomalies topic (read every 2 s)",
            )?,
            retention_runs: IntCounterVec::new(
                Opts::new(
                    RETENTION_RUNS_TOTAL,
                    "Maintenance passes (partitions, retention) by outcome",
                ),
                &["outcome"],
            )?,
            retention_failing: IntGauge::new(
                RETENTION_CONSECUTIVE_FAILURES,
                "Maintenance passes failed in a row",
            )?,
            retention_last_success: IntGauge::new(
                RETENTION_LAST_SUCCESS,
                "Unix time the last maintenance pass of this worker completed",
            )?,
            partitions_created: IntCounterVec::new(
                Opts::new(RETENTION_PARTITIONS_CREATED_TOTAL, "Partitions made"),
                &["table"],
            )?,
            partitions_dropped: IntCounterVec::new(
                Opts::new(
                    RETENTION_PARTITIONS_DROPPED_TOTAL,
                    "Partitions dropped by retention",
                ),
                &["table"],
            )?,
            rows_removed: IntCounterVec::new(
                Opts::new(RETENTION_ROWS_REMOVED_TOTAL, "Rows removed by retention"),
                &["table"],
            )?,
        };
        let mut collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.consumed.clone()),
            Box::new(metrics.stored.clone()),
            Box::new(metrics.duplicates.clone()),
            Box::new(metrics.dlq.clone()),
            Box::new(metrics.batch_messages.clone()),
            Box::new(metrics.db_write_duration.clone()),
            Box::new(metrics.db_write_failures.clone()),
            Box::new(metrics.consumer_lag.clone()),
            Box::new(metrics.assigned_partitions.clone()),
            Box::new(metrics.group_stalled.clone()),
            Box::new(metrics.group_rejoins.clone()),
            Box::new(metrics.end_to_end.clone()),
            Box::new(metrics.offsets_skipped.clone()),
            Box::new(metrics.anomalies.clone()),
            Box::new(metrics.anomaly_users.clone()),
            Box::new(metrics.anomaly_entries.clone()),
            Box::new(metrics.anomaly_publish_failures.clone()),
            Box::new(metrics.anomaly_detection.clone()),
            Box::new(metrics.anomaly_outbox.clone()),
            Box::new(metrics.retention_runs.clone()),
            Box::new(metrics.retention_failing.clone()),
            Box::new(metrics.retention_last_success.clone()),
            Box::new(metrics.partitions_created.clone()),
            Box::new(metrics.partitions_dropped.clone()),
            Box::new(metrics.rows_removed.clone()),
        ];
        collectors.extend(metrics.http.collectors());
        eventpipe_service::metrics::register_all(&metrics.registry, collectors)?;
        Ok(metrics)
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
