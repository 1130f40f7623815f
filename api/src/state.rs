//! [`AppState`]: what every handler shares, and [`start`], which connects
//! it (Kafka, keys, rate limits, metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use eventpipe_service::kafka::KafkaStatus;

use crate::auth::ApiKeys;
use crate::backlog::Backlog;
use crate::config::ApiConfig;
use crate::error::AppError;
use crate::invalid::InvalidSink;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::sink::{EventSink, GroupProgress};

/// Everything the handlers share.
pub struct App {
    /// The configuration the server started with.
    pub config: ApiConfig,
    /// The Kafka producer.
    pub sink: EventSink,
    /// Where rejected events are kept (`API_INVALID_TOPIC`), if anywhere.
    pub invalid: Option<InvalidSink>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Accepted API keys.
    pub keys: ApiKeys,
    /// Per-key rate limits.
    pub limiter: RateLimiter,
    /// The bound on what the workers have yet to consume.
    pub backlog: Backlog,
    /// Reads the workers' progress, when a backlog bound is set.
    pub progress: Option<GroupProgress>,
    /// What the last Kafka probe found.
    pub kafka: KafkaStatus,
    /// Set once shutdown began: `/ready` turns 503 so traffic moves away.
    pub draining: AtomicBool,
    /// Events handed to the producer and not yet answered for.
    pub in_flight: AtomicUsize,
}

/// Requests or events counted in one of [`App`]'s counters until dropped.
pub struct Admitted<'a> {
    count: &'a AtomicUsize,
    n: usize,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl App {
    /// Counts `events` as in flight, or refuses them when that would pass
    /// `API_MAX_IN_FLIGHT_EVENTS` (a request alone is always let through,
    /// so the limit is never below one request).
    pub fn admit(&self, events: usize) -> Result<Admitted<'_>, AppError> {
        let limit = self.config.max_in_flight_events;
        count_in(&self.in_flight, events, limit, || {
            format!(
                "the API already has {limit} events waiting for Kafka's acknowledgement, its limit (API_MAX_IN_FLIGHT_EVENTS)"
            )
        })
    }
}

/// Adds `n` to `count` unless that passes `limit` (with something already
/// counted); the guard takes it off again.
fn count_in<'a>(
    count: &'a AtomicUsize,
    n: usize,
    limit: usize,
    detail: impl FnOnce() -> String,
) -> Result<Admitted<'a>, AppError> {
    let before = count.fetch_add(n, Ordering::AcqRel);
    if before > 0 && before + n > limit {
        count.fetch_sub(n, Ordering::AcqRel);
        return Err(AppError::Overloaded {
            detail: detail(),
            retry_after: Duration::from_secs(1),
        });
    }
    Ok(Admitted { count, n })
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

/// The longest start-up waits for the cluster's own brokers to answer
/// once the bootstrap address did ([`EventSink::await_brokers`]).
const BROKERS_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Connects to Kafka (creating the events topic when missing) and builds
/// the shared state.
pub async fn start(config: ApiConfig) -> anyhow::Result<AppState> {
    let metrics = Metrics::new().context("registering metrics")?;
    let sink = EventSink::new(&config.kafka)?;
    metrics
        .register(Box::new(sink.health().rebuilt_counter()))
        .context("registering metrics")?;
    sink.ensure_topic(&config.kafka).await?;
    sink.await_brokers(BROKERS_WITHIN).await;
    let invalid = match &config.kafka.invalid {
        Some(invalid) => {
            sink.ensure_named(&config.kafka, &invalid.topic, 1, "API_INVALID_TOPIC")
                .await?;
            Some(InvalidSink::new(&config.kafka, invalid, &metrics)?)
        }
        None => None,
    };
    let keys = ApiKeys::new(&config.api_keys);
    if !keys.required() {
        tracing::warn!(
            "no API keys configured (API_KEY_SHA256, API_KEYS_FILE): anyone who can reach the API can send events"
        );
    }
    let limiter = RateLimiter::new(config.rate_limit, keys.bucket_count());
    let backlog = Backlog::new(
        config.backlog.clone(),
        &config.kafka.events_topic,
        config.limits.max_event_bytes,
        &config.kafka.compression,
        metrics.clone(),
    );
    let progress = if config.backlog.any() {
        let progress = GroupProgress::new(&config.kafka, &config.backlog.group_id)?;
        // Read once before serving, so the first requests need not wait.
        read_progress(&backlog, &progress, config.kafka.connection.connect_timeout).await;
        Some(progress)
    } else {
        None
    };
    metrics.kafka_ready.set(1);
    Ok(AppState(Arc::new(App {
        config,
        sink,
        invalid,
        metrics,
        keys,
        limiter,
        backlog,
        progress,
        kafka: KafkaStatus::new(true),
        draining: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
    })))
}

/// Reads the workers' progress into the backlog.
pub(crate) async fn read_progress(backlog: &Backlog, progress: &GroupProgress, timeout: Duration) {
    let began = std::time::Instant::now();
    match progress.read(timeout).await {
        Ok(lags) => backlog.observe(&lags, began),
        Err(error) => {
            tracing::debug!(error = %format!("{error:#}"), "could not read the workers' progress");
            backlog.unobserved(&error);
        }
    }
}
