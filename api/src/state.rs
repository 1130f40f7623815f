//! [`AppState`]: what every handler shares, and [`start`], which connects
//! it (Kafka, keys, rate limits, metrics).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::auth::ApiKeys;
use crate::config::ApiConfig;
use crate::invalid::InvalidSink;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::sink::EventSink;

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

/// Connects to Kafka (creating the events topic when missing) and builds
/// the shared state.
pub async fn start(config: ApiConfig) -> anyhow::Result<AppState> {
    let metrics = Metrics::new().context("registering metrics")?;
    let sink = EventSink::new(&config.kafka)?;
    sink.ensure_topic(&config.kafka).await?;
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
    metrics.kafka_ready.set(1);
    Ok(AppState(Arc::new(App {
        config,
        sink,
        invalid,
        metrics,
        keys,
        limiter,
        kafka_up: AtomicBool::new(true),
        draining: AtomicBool::new(false),
    })))
}
