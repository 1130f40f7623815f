//! The API's configuration: one typed struct read from environment variables,
//! validated at start-up with an error that names the variable. [`VARS`] is
//! the single list of variables: `--help` prints it and [`Env`] refuses to
//! read a variable missing from it, so the two cannot drift apart.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use eventpipe_contract::Rules;

pub use crate::backlog::BacklogLimits;
use eventpipe_service::http::layers::{self, HttpTimeouts};
use eventpipe_service::producer_health::{self, HealthRule};
use eventpipe_service::settings::kafka::{self, KafkaConnection, TopicCreation};
use eventpipe_service::settings::{self, Env, var};
pub use eventpipe_service::settings::{ConfigError, Var};
use sha2::{Digest, Sha256};

/// Every variable the API reads, with its default.
pub const VARS: &[Var] = &[
    var(
        "API_ADDR",
        Some("127.0.0.1:8080"),
        "address the HTTP server listens on",
    ),
    kafka::BOOTSTRAP_SERVERS,
    kafka::EVENTS_TOPIC,
    kafka::EVENTS_PARTITIONS,
    kafka::REPLICATION_FACTOR,
    kafka::CREATE_TOPICS,
    kafka::CONNECT_TIMEOUT_MS,
    var(
        "KAFKA_MESSAGE_TIMEOUT_MS",
        Some("5000"),
        "how long Kafka may take to acknowledge an event before the request gets 503",
    ),
    var(
        "KAFKA_LINGER_MS",
        Some("0"),
        "producer linger.ms: how long to wait to fill a batch (0: send at once; under load batches fill while earlier ones are in flight)",
    ),
    var(
        "KAFKA_COMPRESSION",
        Some("lz4"),
        "producer compression.type: none, gzip, snappy, lz4 or zstd",
    ),
    var(
        "KAFKA_QUEUE_MAX_MESSAGES",
        Some("200000"),
        "producer queue size; when full, requests get 503",
    ),
    producer_health::UNREADY_AFTER_VAR,
    producer_health::REBUILD_AFTER_VAR,
    var(
        "API_INVALID_TOPIC",
        None,
        "keep each rejected (422) event with its errors on this topic, for debugging (unset: off)",
    ),
    var(
        "API_INVALID_QUEUE_MAX_MESSAGES",
        Some("10000"),
        "rejected events waiting for Kafka at most; beyond, they are dropped and counted",
    ),
    kafka::CONFIG,
    var(
        "API_MAX_BODY_BYTES",
        Some("5242880"),
        "largest request body, as sent (413 above)",
    ),
    var(
        "API_MAX_DECOMPRESSED_BYTES",
        Some("5242880"),
        "largest gzip request body once decompressed (413 above)",
    ),
    var(
        "API_MAX_BATCH_EVENTS",
        Some("1000"),
        "most events in one request (413 above)",
    ),
    var(
        "API_MAX_EVENT_BYTES",
        Some("65536"),
        "largest single event, as JSON text (413 above)",
    ),
    var(
        "EVENT_MAX_FUTURE_SECS",
        Some("300"),
        "how far in the future an event timestamp may be (422 above)",
    ),
    var(
        "EVENT_STRICT_TYPES",
        Some("false"),
        "reject event types other than the known ones",
    ),
    var(
        "API_KEY_SHA256",
        None,
        "comma-separated SHA-256 hex digests of accepted API keys; with API_KEYS_FILE unset too, the API is open",
    ),
    var(
        "API_KEYS_FILE",
        None,
        "file of SHA-256 hex digests of accepted API keys, one per line, # comments",
    ),
    var(
        "API_RATE_LIMIT_EVENTS_PER_SEC",
        Some("0"),
        "events per second each API key may send (0: unlimited)",
    ),
    var(
        "API_RATE_LIMIT_BURST",
        None,
        "events a key may send at once (default: the larger of the rate and API_MAX_BATCH_EVENTS)",
    ),
    var(
        "API_MAX_IN_FLIGHT_REQUESTS",
        Some("1024"),
        "POST /events requests a replica serves at once; one beyond it gets 503 at once",
    ),
    var(
        "API_MAX_IN_FLIGHT_EVENTS",
        Some("10000"),
        "events a replica may have waiting for Kafka's acknowledgement; a request beyond it gets 503 at once",
    ),
    kafka::GROUP_ID,
    var(
        "API_MAX_BACKLOG_BYTES",
        None,
        "bytes the events topic keeps per partition (retention.bytes): events are refused with 503 rather than let this replica's events the workers have not committed reach it on any partition; exact for one replica (unset: off; the local run sets it for its embedded Kafka)",
    ),
    var(
        "API_MAX_BACKLOG_MESSAGES",
        None,
        "events are refused with 503 while any partition of the events topic has this many messages the workers have not committed, whoever produced them (unset: off)",
    ),
    var(
        "API_BACKLOG_CHECK_MS",
        Some("100"),
        "how often the workers' committed offsets are read when a backlog bound is set",
    ),
    var(
        "API_SHUTDOWN_GRACE_SECS",
        Some("10"),
        "on SIGTERM/Ctrl-C, how long in-flight requests and the producer flush may take",
    ),
    layers::REQUEST_TIMEOUT_VAR,
    layers::BODY_TIMEOUT_VAR,
    settings::RUST_LOG_VAR,
    settings::LOG_FORMAT_VAR,
];

/// Kafka producer settings, each field named after its variable in
/// [`VARS`] (where its default is).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CONNECT_TIMEOUT_MS`, `KAFKA_CONFIG`.
    pub connection: KafkaConnection,
    /// `KAFKA_EVENTS_TOPIC`.
    pub events_topic: String,
    /// `KAFKA_EVENTS_PARTITIONS`.
    pub events_partitions: i32,
    /// `KAFKA_CREATE_TOPICS`, `KAFKA_REPLICATION_FACTOR`.
    pub topics: TopicCreation,
    /// `KAFKA_MESSAGE_TIMEOUT_MS`.
    pub message_timeout: Duration,
    /// `KAFKA_LINGER_MS`.
    pub linger_ms: u32,
    /// `KAFKA_COMPRESSION`.
    pub compression: String,
    /// `KAFKA_QUEUE_MAX_MESSAGES`.
    pub queue_max_messages: u32,
    /// `KAFKA_UNREADY_AFTER_FAILED_SENDS` and `KAFKA_REBUILD_AFTER_REFUSED_SENDS`.
    pub health: HealthRule,
    /// `API_INVALID_TOPIC` and `API_INVALID_QUEUE_MAX_MESSAGES`: where
    /// rejected events are kept, if anywhere.
    pub invalid: Option<InvalidTopic>,
}

/// Where rejected events are kept for debugging.
#[derive(Debug, Clone)]
pub struct InvalidTopic {
    /// The topic.
    pub topic: String,
    /// The most rejected events waiting for Kafka.
    pub queue_max_messages: u32,
}

/// Size and count limits on requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `API_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `API_MAX_DECOMPRESSED_BYTES`.
    pub max_decompressed_bytes: usize,
    /// `API_MAX_BATCH_EVENTS`.
    pub max_batch_events: usize,
    /// `API_MAX_EVENT_BYTES`.
    pub max_event_bytes: usize,
}

/// The per-key token bucket.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// `API_RATE_LIMIT_EVENTS_PER_SEC`.
    pub events_per_sec: f64,
    /// `API_RATE_LIMIT_BURST`.
    pub burst: f64,
}

/// SHA-256 digests of the accepted API keys. `Debug` shows only how many.
#[derive(Clone, Default)]
pub struct KeyDigests(pub Vec<[u8; 32]>);

impl fmt::Debug for KeyDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigests({} keys)", self.0.len())
    }
}

impl KeyDigests {
    /// The digest of a plain key, for tests and for operators creating keys.
    pub fn digest(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }
}

/// Everything the API needs to run, each field named after its variables
/// in [`VARS`] (where their defaults are).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `API_ADDR`.
    pub addr: SocketAddr,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Request limits.
    pub limits: Limits,
    /// Event validation rules (`EVENT_MAX_FUTURE_SECS`, `EVENT_STRICT_TYPES`).
    pub rules: Rules,
    /// `API_KEY_SHA256` and `API_KEYS_FILE` together; empty means open.
    pub api_keys: KeyDigests,
    /// Per-key rate limit; `None` when `API_RATE_LIMIT_EVENTS_PER_SEC` is 0.
    pub rate_limit: Option<RateLimit>,
    /// `API_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace: Duration,
    /// `API_MAX_IN_FLIGHT_EVENTS`.
    pub max_in_flight_events: usize,
    /// `API_MAX_IN_FLIGHT_REQUESTS`.
    pub max_in_flight_requests: usize,
    /// `HTTP_REQUEST_TIMEOUT_SECS` and `HTTP_BODY_TIMEOUT_SECS`.
    pub http: HttpTimeouts,
    /// The backlog bounds (`API_MAX_BACKLOG_*`, `KAFKA_GROUP_ID`).
    pub backlog: BacklogLimits,
}

impl ApiConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable's value if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(VARS, lookup);
        let limits = Limits {
            max_body_bytes: env.positive("API_MAX_BODY_BYTES")?,
            max_decompressed_bytes: env.positive("API_MAX_DECOMPRESSED_BYTES")?,
            max_batch_events: env.positive("API_MAX_BATCH_EVENTS")?,
            max_event_bytes: env.positive("API_MAX_EVENT_BYTES")?,
        };
        let rate: f64 = env.required("API_RATE_LIMIT_EVENTS_PER_SEC")?;
        let rate_limit = if rate > 0.0 {
            let burst = env
                .optional("API_RATE_LIMIT_BURST")?
                .unwrap_or_else(|| rate.max(limits.max_batch_events as f64));
            if burst < 1.0 {
                return Err(ConfigError::new(
                    "API_RATE_LIMIT_BURST",
                    "must be at least 1",
                ));
            }
            Some(RateLimit {
                events_per_sec: rate,
                burst,
            })
        } else {
            None
        };
        let max_future_secs: i64 = env.required("EVENT_MAX_FUTURE_SECS")?;
        let compression: String = env.required("KAFKA_COMPRESSION")?;
        let backlog = BacklogLimits {
            max_bytes: env.optional_positive("API_MAX_BACKLOG_BYTES")?,
            max_messages: env.optional_positive("API_MAX_BACKLOG_MESSAGES")?,
            group_id: env.required(kafka::GROUP_ID.name)?,
            check_interval: Duration::from_millis(env.positive("API_BACKLOG_CHECK_MS")?),
        };
        if let Some(max) = backlog.max_bytes {
            let least = 2 * crate::backlog::headroom(limits.max_event_bytes, &compression);
            if max < least {
                return Err(ConfigError::new(
                    "API_MAX_BACKLOG_BYTES",
                    format!(
                        "must be at least {least} bytes: the bound keeps a producer batch and a redrive's room free below it, and needs as much again for events"
                    ),
                ));
            }
        }
        Ok(ApiConfig {
            addr: env.required("API_ADDR")?,
            kafka: KafkaConfig {
                connection: KafkaConnection::from_env(&env)?,
                events_topic: env.required(kafka::EVENTS_TOPIC.name)?,
                events_partitions: env.positive(kafka::EVENTS_PARTITIONS.name)?,
                topics: TopicCreation::from_env(&env)?,
                message_timeout: Duration::from_millis(env.positive("KAFKA_MESSAGE_TIMEOUT_MS")?),
                linger_ms: env.required("KAFKA_LINGER_MS")?,
                compression,
                queue_max_messages: env.positive("KAFKA_QUEUE_MAX_MESSAGES")?,
                health: HealthRule::from_env(&env)?,
                invalid: match env.optional::<String>("API_INVALID_TOPIC")? {
                    Some(topic) => Some(InvalidTopic {
                        topic,
                        queue_max_messages: env.positive("API_INVALID_QUEUE_MAX_MESSAGES")?,
                    }),
                    None => None,
                },
            },
            limits,
            rules: Rules {
                max_future: chrono::Duration::seconds(max_future_secs.max(0)),
                strict_types: env.required("EVENT_STRICT_TYPES")?,
            },
            api_keys: api_keys(&env)?,
            rate_limit,
            shutdown_grace: Duration::from_secs(env.required("API_SHUTDOWN_GRACE_SECS")?),
            max_in_flight_events: env.positive("API_MAX_IN_FLIGHT_EVENTS")?,
            max_in_flight_requests: env.positive("API_MAX_IN_FLIGHT_REQUESTS")?,
            http: HttpTimeouts::from_env(&env)?,
            backlog,
        })
    }
}

/// The variables as `--help` prints them.
pub fn help() -> String {
    format!(
        "{}\nTracing (OpenTelemetry):\n{}",
        eventpipe_service::settings::help(VARS),
        eventpipe_service::settings::help(eventpipe_service::telemetry::VARS)
    )
}

fn api_keys<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<KeyDigests, ConfigError> {
    let mut digests = Vec::new();
    if let Some(list) = env.raw("API_KEY_SHA256") {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            digests.push(parse_digest(item).map_err(|m| ConfigError::new("API_KEY_SHA256", m))?);
        }
    }
    if let Some(path) = env.raw("API_KEYS_FILE") {
        let file_error = |message: String| ConfigError::new("API_KEYS_FILE", message);
        let text = std::fs::read_to_string(Path::new(&path))
            .map_err(|e| file_error(format!("cannot read {path}: {e}")))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            digests.push(
                parse_digest(line)
                    .map_err(|m| file_error(format!("{path} line {}: {m}", n + 1)))?,
            );
        }
    }
    Ok(KeyDigests(digests))
}

fn parse_digest(hex_digest: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut out).map_err(|_| {
        "expected a SHA-256 digest as 64 hex characters (e.g. from `printf %s KEY | sha256sum`)"
            .to_owned()
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ApiConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_only_the_brokers() {
        let c = config(&[("KAFKA_BOOTSTRAP_SERVERS", "k:9092")]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.kafka.events_topic, "events");
        assert_eq!(c.kafka.events_partitions, 6);
        assert_eq!(c.limits.max_body_bytes, 5 * 1024 * 1024);
        assert_eq!(c.limits.max_batch_events, 1000);
        assert_eq!(c.limits.max_event_bytes, 64 * 1024);
        assert_eq!(c.rules.max_future.num_seconds(), 300);
        assert!(c.api_keys.0.is_empty());
        assert!(c.rate_limit.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        let missing = config(&[]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "KAFKA_BOOTSTRAP_SERVERS: is required but not set"
        );
        let cases = [
            ("API_ADDR", "nowhere"),
            ("API_MAX_BATCH_EVENTS", "0"),
            ("API_MAX_BODY_BYTES", "-5"),
            ("KAFKA_CREATE_TOPICS", "maybe"),
            ("API_KEY_SHA256", "abc"),
            ("KAFKA_CONFIG", "novalue"),
            ("API_KEYS_FILE", "/nonexistent/keys"),
            ("API_MAX_IN_FLIGHT_EVENTS", "0"),
            ("API_MAX_IN_FLIGHT_REQUESTS", "none"),
            ("KAFKA_LINGER_MS", "-1"),
            ("KAFKA_UNREADY_AFTER_FAILED_SENDS", "0"),
            ("KAFKA_REBUILD_AFTER_REFUSED_SENDS", "-1"),
        ];
        for (name, value) in cases {
            let err = config(&[("KAFKA_BOOTSTRAP_SERVERS", "k:9092"), (name, value)]).unwrap_err();
            assert_eq!(err.var, name, "{err}");
        }
        let err = config(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
            ("API_INVALID_TOPIC", "events.invalid"),
            ("API_INVALID_QUEUE_MAX_MESSAGES", "0"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "API_INVALID_QUEUE_MAX_MESSAGES", "{err}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let digest = hex::encode(KeyDigests::digest("s3cret"));
        let c = config(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
            ("API_KEY_SHA256", &digest),
            ("KAFKA_CONFIG", "sasl.username=bob;sasl.password=hunter2"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains(&digest),
            "{debug}"
        );
        assert!(debug.contains("sasl.password"));
        assert_eq!(c.api_keys.0, vec![KeyDigests::digest("s3cret")]);
    }

    #[test]
    fn rate_limit_burst_defaults_to_fit_a_full_batch() {
        let c = config(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "k"),
            ("API_RATE_LIMIT_EVENTS_PER_SEC", "10"),
        ])
        .unwrap();
        let limit = c.rate_limit.unwrap();
        assert_eq!((limit.events_per_sec, limit.burst), (10.0, 1000.0));
    }

    #[test]
    fn help_lists_every_variable() {
        let text = help();
        assert!(VARS.iter().all(|v| text.contains(v.name)));
    }
}
