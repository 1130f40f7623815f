//! eventpipe's worker: consumes the events topic into PostgreSQL exactly
//! once (at-least-once delivery, idempotent rows, offsets committed only
//! after the transaction), with a dead-letter topic for messages that can
//! never be stored, anomaly detection, and over HTTP the analytics read API
//! (with Swagger UI at `/docs`), health, readiness and metrics.
//!
//! [`serve`] runs it on a bound listener until a shutdown future resolves,
//! so tests run the real worker and `main` stays thin.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub mod analytics;
pub mod config;
pub mod controllers;
pub mod decode;
pub mod detection;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod source;

use config::WorkerConfig;
use eventpipe_anomaly as anomaly;
use eventpipe_store::DbPool;
use metrics::Metrics;
use source::Source;

/// How often readiness re-checks PostgreSQL and Kafka.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the loop and the HTTP handlers share.
pub struct Worker {
    /// The configuration it started with.
    pub config: WorkerConfig,
    /// PostgreSQL connections for writing.
    pub pool: DbPool,
    /// Analytics queries, on connections of their own.
    pub analytics: analytics::sql::Analytics,
    /// Kafka consumer and DLQ producer.
    pub source: Source,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Whether PostgreSQL answered the last probe.
    pub database_up: AtomicBool,
    /// Whether Kafka answered the last probe.
    pub kafka_up: AtomicBool,
    /// The anomaly detector (`None` when `WORKER_ANOMALIES` is false), with
    /// the revocation count its state was built under.
    pub detector: Option<tokio::sync::Mutex<(anomaly::Detector, u64)>>,
    /// Committed anomalies on their way to the topic.
    pub publications: tokio::sync::mpsc::Sender<Vec<anomaly::Anomaly>>,
    /// The other end, taken by the publishing task.
    publications_queue:
        std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Vec<anomaly::Anomaly>>>>,
}

/// Committed batches whose anomalies may wait for publication at once.
const PUBLICATION_QUEUE: usize = 16;

/// Connects everything, failing with a message naming the variable to fix
/// when PostgreSQL or Kafka cannot be reached or the schema or a topic is
/// missing; migrates first when `DATABASE_MIGRATE` is set.
pub async fn start(config: WorkerConfig) -> anyhow::Result<Arc<Worker>> {
    if config.migrate {
        eventpipe_store::migrate(&config.database_url).await?;
    }
    eventpipe_store::check_schema(&config.database_url).await?;
    let metrics = Metrics::new().context("registering metrics")?;
    let pool = eventpipe_store::pool(&config.database_url, config.pool_size).await?;
    let analytics = analytics::sql::Analytics::new(
        eventpipe_store::pool(&config.database_url, config.analytics_pool_size).await?,
        config.analytics_timeout_ms,
    );
    let database_up = eventpipe_store::ping(&pool).await;
    let source = Source::new(&config, metrics.clone())?;
    source.check_topics(&config, config.connect_timeout)?;
    let detector = config.rules.clone().map(|rules| {
        tokio::sync::Mutex::new((anomaly::Detector::new(rules, config.anomaly_max_users), 0))
    });
    let (publications, queue) = tokio::sync::mpsc::channel(PUBLICATION_QUEUE);
    Ok(Arc::new(Worker {
        detector,
        publications,
        publications_queue: std::sync::Mutex::new(Some(queue)),
        config,
        pool,
        analytics,
        source,
        metrics,
        database_up: AtomicBool::new(database_up),
        kafka_up: AtomicBool::new(false),
    }))
}

/// The HTTP routes: the analytics API under `/api/v1/analytics`, `/health`,
/// `/ready`, `/metrics`, and Swagger UI at `/docs` with the document at
/// `/openapi.json`.
pub fn app(worker: Arc<Worker>) -> Router {
    use controllers::analytics::{PREFIX, anomalies, counts, require_read_token};
    let analytics = Router::new()
        .route(&format!("{PREFIX}/counts/total"), get(counts::get_total))
        .route(
            &format!("{PREFIX}/counts/timeseries"),
            get(counts::get_timeseries),
        )
        .route(
            &format!("{PREFIX}/counts/breakdown"),
            get(counts::get_breakdown),
        )
        .route(
            &format!("{PREFIX}/anomalies/counts"),
            get(anomalies::get_anomaly_counts),
        )
        .route(
            &format!("{PREFIX}/anomalies/timeseries"),
            get(anomalies::get_anomaly_timeseries),
        )
        .route(
            &format!("{PREFIX}/anomalies/recent"),
            get(anomalies::get_recent_anomalies),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            require_read_token,
        ));
    Router::new()
        .merge(analytics)
        .route("/health", get(controllers::health::get_health))
        .route("/ready", get(controllers::health::get_ready))
        .route("/metrics", get(controllers::health::get_metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::WorkerDoc::openapi()))
        .layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            observe,
        ))
        .with_state(worker)
}

/// Middleware: request count and latency by route, method and status.
async fn observe(State(worker): State<Arc<Worker>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let labels = [route.as_str(), method.as_str(), status.as_str()];
    worker
        .metrics
        .http_requests
        .with_label_values(&labels)
        .inc();
    worker
        .metrics
        .http_duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Runs the worker until `shutdown` resolves, then finishes (or abandons,
/// uncommitted) the batch in flight within the grace period.
pub async fn serve(
    config: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let worker = start(config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing the batch in flight");
        let _ = stop_tx.send(true);
    });
    let probe = tokio::spawn(probe(worker.clone()));
    let sweep = tokio::spawn(pipeline::sweep_unpublished(worker.clone()));
    let queue = worker
        .publications_queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let (pipeline_done, done) = tokio::sync::watch::channel(false);
    let publisher =
        queue.map(|queue| tokio::spawn(pipeline::publish_committed(worker.clone(), queue, done)));
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(
        axum::serve(listener, app(worker.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );
    let grace = worker.config.shutdown_grace;
    let mut deadline_stop = stop_rx.clone();
    let deadline = async move {
        let _ = deadline_stop.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        ran = pipeline::run(worker.clone(), stop_rx) => ran?,
        () = deadline => tracing::warn!("the batch in flight outlived the grace period; leaving it uncommitted"),
    }
    probe.abort();
    sweep.abort();
    // What committed batches queued is published before the worker stops,
    // within the grace period (a sweep, here or elsewhere, covers the rest).
    let _ = pipeline_done.send(true);
    if let Some(mut publisher) = publisher
        && tokio::time::timeout(grace, &mut publisher).await.is_err()
    {
        tracing::warn!("anomalies still unpublished at shutdown; the sweep will publish them");
        publisher.abort();
    }
    // Wait for the aborts, so the clients they hold close before we return.
    let _ = probe.await;
    let _ = sweep.await;
    http.await
        .context("HTTP server task")?
        .context("serving HTTP")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Keeps the readiness flags current.
async fn probe(worker: Arc<Worker>) {
    loop {
        let kafka = tokio::task::block_in_place(|| worker.source.probe(PROBE_INTERVAL));
        worker.kafka_up.store(kafka, Ordering::Relaxed);
        let database = eventpipe_store::ping(&worker.pool).await;
        worker.database_up.store(database, Ordering::Relaxed);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
