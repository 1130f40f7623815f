//! eventpipe's worker: consumes the events topic into PostgreSQL exactly
//! once (at-least-once delivery, idempotent rows, offsets committed only
//! after the transaction), with a dead-letter topic for messages that can
//! never be stored and anomaly detection (`eventpipe-anomaly`) in the same
//! transaction; over HTTP it serves the read side (`eventpipe-query`, with
//! Swagger UI at `/docs`), health, readiness and metrics.
//!
//! [`serve`] runs it on a bound listener until a shutdown future resolves,
//! so tests run the real worker and `main` stays thin.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use eventpipe_service::http::{layers, observe, openapi as docs};
use eventpipe_service::kafka::Reach;
use tokio::net::TcpListener;

pub mod config;
pub mod controllers;
pub mod dead_letters;
pub mod decode;
pub mod detection;
pub mod function;
pub mod maintenance;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod progress;
pub mod source;
pub mod state;

use config::WorkerConfig;
use progress::GroupWatch;
pub use state::{Worker, start};

/// How often readiness re-checks PostgreSQL and Kafka (and the DLQ is counted).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The HTTP server: the operations and the read side, Swagger UI at
/// `/docs` with their document (what [`openapi::document`] builds) at
/// `/openapi.json`, request ids and metrics, and the protective layers.
pub fn app(worker: Arc<Worker>) -> Router {
    let (router, document) = openapi::operations()
        .with_state(worker.clone())
        .merge(eventpipe_query::routes(worker.read.clone()))
        .split_for_parts();
    let router = router
        .merge(docs::docs(document))
        .layer(axum::middleware::from_fn_with_state(
            worker.metrics.http.clone(),
            observe::observe,
        ));
    layers::protect(router, worker.config.http)
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
    let probe = tokio::spawn(probe(worker.clone(), true));
    let sweep = tokio::spawn(pipeline::sweep_unpublished(worker.clone()));
    let maintenance = tokio::spawn(maintenance::run(worker.clone()));
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
    maintenance.abort();
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
    let _ = maintenance.await;
    http.await
        .context("HTTP server task")?
        .context("serving HTTP")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Recreates the topics a broker that answers no longer knows (deleted,
/// or an in-memory broker restarted) when `KAFKA_CREATE_TOPICS` allows;
/// otherwise, or when that fails, Kafka counts as down with the reason.
async fn restore_topics(worker: &Worker, missing: &[String]) -> (bool, Option<String>) {
    tracing::warn!(
        topics = ?missing,
        "topics are missing from Kafka (deleted, or a broker that keeps nothing restarted)"
    );
    match worker
        .source
        .ensure_topics(&worker.config, worker.config.kafka.connect_timeout)
        .await
    {
        Ok(()) => (true, None),
        Err(error) => (false, Some(format!("{error:#}"))),
    }
}

/// Keeps the readiness flags current, the outbox depth and, for a
/// `member` of the consumer group, the group's lag; replaces a producer
/// that can no longer deliver; has a member that sits idle while the
/// group stalls rejoin it.
pub(crate) async fn probe(worker: Arc<Worker>, member: bool) {
    let config = &worker.config;
    let mut watch = GroupWatch::new(config.stall_after, config.rejoin_after);
    loop {
        let needed = worker.config.needed_topics();
        let topics: Vec<&str> = needed.iter().map(|t| t.name).collect();
        let (kafka, problem) =
            match tokio::task::block_in_place(|| worker.source.probe(&topics, PROBE_INTERVAL)) {
                Reach::Answers => (true, None),
                Reach::Down => (false, None),
                Reach::Missing(missing) => restore_topics(&worker, &missing).await,
            };
        worker.source.producer_health().broker_answers(kafka);
        worker.kafka.set(kafka, problem);
        worker.source.heal_producer();
        if kafka {
            tokio::task::block_in_place(|| worker.dead_letters.refresh());
            if member {
                watch_group(&worker, &mut watch);
            }
        }
        let database = eventpipe_store::ping(&worker.pool).await;
        worker.database_up.store(database, Ordering::Relaxed);
        if database && let Ok(depth) = eventpipe_store::anomalies::outbox_depth(&worker.pool).await
        {
            worker.metrics.anomaly_outbox.set(depth);
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Reports the group's lag on every partition and whether it progresses,
/// and acts on [`GroupWatch`]'s verdict.
fn watch_group(worker: &Worker, watch: &mut GroupWatch) {
    let assigned = worker.source.assigned_partitions();
    let metrics = &worker.metrics;
    metrics
        .assigned_partitions
        .set(i64::try_from(assigned).unwrap_or(i64::MAX));
    let lags = match tokio::task::block_in_place(|| worker.source.group_lag(PROBE_INTERVAL)) {
        Ok(lags) => lags,
        Err(error) => {
            tracing::debug!(%error, "could not read the group's lag");
            return;
        }
    };
    for p in &lags {
        metrics
            .consumer_lag
            .with_label_values(&[&worker.config.events_topic, &p.partition.to_string()])
            .set(p.lag);
    }
    let verdict = watch.observe(&lags, assigned, std::time::Instant::now());
    metrics
        .group_stalled
        .set(i64::try_from(verdict.stalled_for.as_secs()).unwrap_or(i64::MAX));
    let mut idle = worker
        .idle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match (&verdict.idle, idle.is_some()) {
        (Some(reason), false) => tracing::warn!(%reason, "/ready now answers 503"),
        (None, true) => tracing::info!("the worker consumes again, or the group progresses"),
        _ => {}
    }
    *idle = verdict.idle;
    drop(idle);
    if verdict.rejoin {
        tracing::warn!(
            lag = verdict.lag,
            stalled_secs = verdict.stalled_for.as_secs(),
            "holding no partition while the group stalls: leaving and rejoining the consumer group (WORKER_REJOIN_AFTER_SECS)"
        );
        metrics.group_rejoins.inc();
        if let Err(error) = worker.source.rejoin() {
            tracing::error!(%error, "could not rejoin the consumer group");
        }
    }
}
