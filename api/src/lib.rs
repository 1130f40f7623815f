//! eventpipe's ingestion API: validates events and produces them to Kafka
//! with `acks=all`, answering 202 only once Kafka acknowledged them.
//!
//! [`serve`] runs the server on a bound listener until a shutdown future
//! resolves, so tests run the real server on port 0 and `main` stays thin.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub mod auth;
pub mod config;
pub mod controllers;
pub mod error;
pub mod intake;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod rate_limit;
pub mod sink;

use auth::ApiKeys;
use config::ApiConfig;
use metrics::Metrics;
use rate_limit::RateLimiter;
use sink::EventSink;

/// How often `/ready` re-checks that Kafka answers.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the handlers share.
pub struct App {
    /// The configuration the server started with.
    pub config: ApiConfig,
    /// The Kafka producer.
    pub sink: EventSink,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Accepted API keys.
    pub keys: ApiKeys,
    /// Per-key rate limits.
    pub limiter: RateLimiter,
    /// Whether the last Kafka probe succeeded.
    pub kafka_up: AtomicBool,
    /// Set once shutdown began: `/ready` turns 503 so traffic moves away.
    pub draining: AtomicBool,
}

/// Handler state: the shared [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The routes, with Swagger UI at `/docs` and the document at `/openapi.json`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/events", post(controllers::events::ingest::ingest_events))
        .route("/health", get(controllers::health::get_health))
        .route("/ready", get(controllers::health::get_ready))
        .route("/metrics", get(controllers::metrics::get_metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Connects to Kafka (creating the events topic when missing) and builds
/// the shared state.
pub async fn start(config: ApiConfig) -> anyhow::Result<AppState> {
    let metrics = Metrics::new().context("registering metrics")?;
    let sink = EventSink::new(&config.kafka)?;
    sink.ensure_topic(&config.kafka).await?;
    let keys = ApiKeys::new(&config.api_keys);
    if !keys.required() {
        tracing::warn!(
            "no API keys configured (API_KEY_SHA256, API_KEYS_FILE): anyone who can reach the API can send events"
        );
    }
    let limiter = RateLimiter::new(config.rate_limit, keys.bucket_count());
    metrics.kafka_ready.set(1);
    Ok(AppState(Arc::new(App {
        config,
        sink,
        metrics,
        keys,
        limiter,
        kafka_up: AtomicBool::new(true),
        draining: AtomicBool::new(false),
    })))
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
    let probe = tokio::spawn(probe_kafka(state.clone()));
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
    tracing::info!("producer flushed; bye");
    Ok(())
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it sent.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Keeps `kafka_up` current for `/ready`.
async fn probe_kafka(state: AppState) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let up = state.sink.probe(PROBE_INTERVAL).await;
        if up != state.kafka_up.swap(up, Ordering::Relaxed) {
            if up {
                tracing::info!("Kafka reachable again");
            } else {
                tracing::warn!("Kafka unreachable: /ready now answers 503");
            }
        }
        state.metrics.kafka_ready.set(i64::from(up));
    }
}
