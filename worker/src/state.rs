//! [`Worker`]: everything the consuming loop, the publisher and the HTTP
//! handlers share, and [`start`], which connects it all.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use eventpipe_anomaly::{Anomaly, Detector};
use eventpipe_query::ReadSide;
use eventpipe_query::db::Analytics;
use eventpipe_service::kafka::KafkaStatus;
use eventpipe_service::telemetry::{SpanContext, TraceHeaders};
use eventpipe_store::DbPool;
use tokio::sync::mpsc;

use crate::config::WorkerConfig;
use crate::dead_letters::DlqWatermarks;
use crate::metrics::Metrics;
use crate::source::Source;

/// Committed batches whose anomalies may wait for publication at once.
const PUBLICATION_QUEUE: usize = 16;

/// Everything the loop and the HTTP handlers share.
pub struct Worker {
    /// The configuration it started with.
    pub config: WorkerConfig,
    /// PostgreSQL connections for writing.
    pub pool: DbPool,
    /// The read side (analytics), on connections of its own.
    pub read: Arc<ReadSide>,
    /// What the DLQ holds, refreshed by the probe loop for the read side.
    pub dead_letters: Arc<DlqWatermarks>,
    /// Kafka consumer, and the producer for the DLQ and anomalies.
    pub source: Source,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Whether PostgreSQL answered the last probe.
    pub database_up: AtomicBool,
    /// What the last Kafka probe found.
    pub kafka: KafkaStatus,
    /// Why this worker is not doing its job (it holds no partition while
    /// the group stalls), when it is not; see [`crate::progress`].
    pub idle: std::sync::Mutex<Option<String>>,
    /// The anomaly detector (`None` when `WORKER_ANOMALIES` is false), with
    /// the revocation count its state was built under.
    pub detector: Option<tokio::sync::Mutex<(Detector, u64)>>,
    /// Committed anomalies on their way to the topic.
    pub publications: mpsc::Sender<Publication>,
    /// The other end, taken by the publishing task.
    pub(crate) publications_queue: std::sync::Mutex<Option<mpsc::Receiver<Publication>>>,
}

/// Connects everything, failing with a message naming the variable to fix
/// when PostgreSQL or Kafka cannot be reached or the schema or a topic is
/// missing; migrates first when `DATABASE_MIGRATE` is set.
pub async fn start(config: WorkerConfig) -> anyhow::Result<Arc<Worker>> {
    start_as(config, true).await
}

/// [`start`], for a member of the consumer group (`joins`) or for a
/// function handed its batches by the platform ([`crate::function`]).
pub async fn start_as(config: WorkerConfig, joins: bool) -> anyhow::Result<Arc<Worker>> {
    if config.migrate {
        eventpipe_store::migrate(config.database_url.expose()).await?;
    }
    eventpipe_store::check_schema(config.database_url.expose()).await?;
    let metrics = Metrics::new().context("registering metrics")?;
    let pool = eventpipe_store::pool(config.database_url.expose(), config.pool_size).await?;
    let database_up = eventpipe_store::ping(&pool).await;
    let source = Source::new(&config, metrics.clone())?;
    metrics
        .register(Box::new(source.producer_health().rebuilt_counter()))
        .context("registering metrics")?;
    source
        .ensure_topics(&config, config.kafka.connect_timeout)
        .await?;
    if joins {
        source.join()?;
    }
    tokio::task::block_in_place(|| source.await_brokers(std::time::Duration::from_secs(1)));
    let dead_letters = Arc::new(DlqWatermarks::new(
        source.producer(),
        config.dlq_topic.clone(),
        config.kafka.connect_timeout,
    ));
    let read = Arc::new(ReadSide {
        analytics: Analytics::new(
            eventpipe_store::pool(config.database_url.expose(), config.analytics_pool_size).await?,
            config.analytics_timeout_ms,
        ),
        token: config.analytics_token.as_ref().map(|t| t.expose().clone()),
        max_buckets: config.analytics_max_buckets,
        dead_letters: Some(dead_letters.clone()),
    });
    let detector = config
        .rules
        .clone()
        .map(|rules| tokio::sync::Mutex::new((Detector::new(rules, config.anomaly_max_users), 0)));
    let (publications, queue) = mpsc::channel(PUBLICATION_QUEUE);
    Ok(Arc::new(Worker {
        detector,
        publications,
        publications_queue: std::sync::Mutex::new(Some(queue)),
        config,
        pool,
        read,
        dead_letters,
        source,
        metrics,
        database_up: AtomicBool::new(database_up),
        kafka: KafkaStatus::new(false),
        idle: std::sync::Mutex::new(None),
    }))
}

/// Committed anomalies on their way to the topic, with the trace context
/// of the event that raised each (same order) and of the batch.
pub struct Publication {
    /// The anomalies, as stored.
    pub anomalies: Vec<Anomaly>,
    /// The context of the event that raised each (same order), if it had one.
    pub traces: Vec<Option<TraceHeaders>>,
    /// The span of the batch that stored them (invalid when not traced).
    pub batch: SpanContext,
}
