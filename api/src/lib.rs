//! eventpipe's ingestion API: validates events and produces them to Kafka
//! with `acks=all`, answering 202 only once Kafka acknowledged them.
//!
//! [`serve`] runs the server on a bound listener until a shutdown future
//! resolves, so tests run the real server on port 0 and `main` stays thin.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use eventpipe_service::http::{layers, observe, openapi as docs};
use eventpipe_service::kafka::Reach;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

pub mod auth;
pub mod backlog;
pub mod config;
pub mod controllers;
pub mod error;
pub mod function;
pub mod intake;
pub mod invalid;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod sink;
pub mod state;

use config::ApiConfig;
pub use state::{App, AppState, start};

/// How often, at most, the API logs that the backlog is at its bound.
const BACKLOG_WARN_EVERY: Duration = Duration::from_secs(60);

/// How often `/ready` re-checks that Kafka answers.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The server: the routes, Swagger UI at `/docs` with the document at
/// `/openapi.json`, request ids and metrics, and the protective layers.
pub fn app(state: AppState) -> Router {
    let (router, document) = openapi::limited_operations(state.config.max_in_flight_requests)
        .with_state(state.clone())
        .split_for_parts();
    let router = router
        .merge(docs::docs(document))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.http.clone(),
            observe::observe,
        ))
        // A 503 is the API doing its job under load (backpressure, Kafka
        // slow to acknowledge), and its cause is logged where it is known:
        // a line per failed request at ERROR would flood the log (and the
        // cores) exactly when the pipeline is busiest.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)));
    layers::protect(router, state.config.http)
}

/// Serves the API on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish (up to the grace period) and
/// flushes the producer.
pub async fn serve(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = start(config).await?;
    let probe = tokio::spawn(watch(state.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let draining = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        draining.draining.store(true, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let grace = state.config.shutdown_grace;
    let server =
        axum::serve(listener, app(state.clone())).with_graceful_shutdown(stopped(stop_rx.clone()));
    let deadline = async {
        stopped(stop_rx).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the grace period; closing them"),
    }
    probe.abort();
    // Wait for the abort, so the clients it holds close before we return.
    let _ = probe.await;
    state.sink.flush(grace).await?;
    if let Some(invalid) = &state.invalid {
        // Best effort: rejected events never hold a shutdown up for long.
        invalid.flush(std::time::Duration::from_secs(1)).await;
    }
    tracing::info!("producer flushed; bye");
    Ok(())
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it sent.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// What runs beside the requests: [`probe_kafka`], and the reads of the
/// workers' progress when a backlog bound is set.
pub(crate) async fn watch(state: AppState) {
    tokio::join!(probe_kafka(state.clone()), watch_backlog(state));
}

/// Reads the workers' progress every `API_BACKLOG_CHECK_MS`, releasing
/// the backlog's charges as the workers commit (nothing without a bound).
async fn watch_backlog(state: AppState) {
    let Some(progress) = &state.progress else {
        return;
    };
    let limits = state.backlog.limits();
    // Under overload the backlog goes over and under its bound many times
    // a second: say so at most once a minute.
    let mut warned: Option<std::time::Instant> = None;
    let mut over = false;
    loop {
        tokio::time::sleep(limits.check_interval).await;
        state::read_progress(&state.backlog, progress, PROBE_INTERVAL).await;
        match state.backlog.problem() {
            Some(reason) if warned.is_none_or(|at| at.elapsed() >= BACKLOG_WARN_EVERY) => {
                tracing::warn!(%reason, "the workers' backlog is at its bound: events are refused (503) and /ready answers 503");
                warned = Some(std::time::Instant::now());
                over = true;
            }
            None if over => {
                tracing::info!("the workers' backlog is under its bound again");
                over = false;
            }
            _ => {}
        }
    }
}

/// Recreates the events topic a broker that answers no longer knows
/// (deleted, or an in-memory broker restarted) when `KAFKA_CREATE_TOPICS`
/// allows; otherwise, or when that fails, Kafka counts as down with the
/// reason.
async fn restore_topic(state: &AppState) -> (bool, Option<String>) {
    tracing::warn!(
        topic = %state.config.kafka.events_topic,
        "the events topic is missing from Kafka (deleted, or a broker that keeps nothing restarted)"
    );
    match state.sink.ensure_topic(&state.config.kafka).await {
        Ok(()) => (true, None),
        Err(error) => (false, Some(format!("{error:#}"))),
    }
}

/// Keeps the Kafka status current for `/ready`, replaces a producer that can no
/// longer deliver even when no request comes to notice, and forgives a run
/// of failed sends once Kafka answers and the failures stopped (a replica
/// out of rotation gets no requests to prove itself with).
pub(crate) async fn probe_kafka(state: AppState) {
    let mut was_failing = false;
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        state.sink.heal();
        let (up, problem) = match state.sink.probe(PROBE_INTERVAL).await {
            Reach::Answers => (true, None),
            Reach::Down => (false, None),
            Reach::Missing(_) => restore_topic(&state).await,
        };
        state.sink.health().broker_answers(up);
        if up != state.kafka.set(up, problem) {
            if up {
                tracing::info!("Kafka reachable again");
            } else {
                tracing::warn!("Kafka unreachable: /ready now answers 503");
            }
        }
        let health = state.sink.health();
        if health.forgive_if_quiet(up) {
            tracing::info!(
                "no failed send for a while and Kafka answers: /ready answers 200 again"
            );
        }
        let problem = health.problem();
        match (&problem, was_failing) {
            (Some(problem), false) => tracing::warn!(%problem, "/ready now answers 503"),
            (None, true) => tracing::info!("the Kafka producer delivers again"),
            _ => {}
        }
        was_failing = problem.is_some();
        state
            .metrics
            .kafka_ready
            .set(i64::from(up && problem.is_none()));
    }
}
