//! The worker's configuration: one typed struct read from environment
//! variables, validated at start-up with errors naming the variable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventpipe_service::http::layers::{self, HttpTimeouts};
use eventpipe_service::kafka::NeededTopic;
use eventpipe_service::producer_health::{self, HealthRule};
use eventpipe_service::settings::kafka::{self, KafkaConnection, TopicCreation};
use eventpipe_service::settings::{self, Env, Secret, SecretUrl, database, var};
pub use eventpipe_service::settings::{ConfigError, Var};

use eventpipe_anomaly::RuleSet;
use eventpipe_anomaly::rules;
pub use eventpipe_store::partitions::Layout;
pub use eventpipe_store::redact_url;
pub use eventpipe_store::retention::Policy;

/// How the worker makes the topics it needs when they are missing.
#[derive(Debug, Clone, Copy)]
pub struct TopicSettings {
    /// `KAFKA_CREATE_TOPICS` and `KAFKA_REPLICATION_FACTOR`.
    pub creation: TopicCreation,
    /// `KAFKA_EVENTS_PARTITIONS`.
    pub events_partitions: i32,
    /// `KAFKA_DLQ_PARTITIONS`.
    pub dlq_partitions: i32,
    /// `KAFKA_ANOMALIES_PARTITIONS`.
    pub anomalies_partitions: i32,
}

/// What the worker handles when it runs as a Lambda function
/// (`WORKER_FUNCTION_SERVES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionServes {
    /// The batches of a Kafka event source mapping.
    Kafka,
    /// HTTP requests (API Gateway, function URLs): the read side, health.
    Http,
}

impl std::str::FromStr for FunctionServes {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "kafka" => Ok(FunctionServes::Kafka),
            "http" => Ok(FunctionServes::Http),
            _ => Err("expected `kafka` or `http`".to_owned()),
        }
    }
}

/// Every variable the worker reads, with its default.
pub const VARS: &[Var] = &[
    var(
        "WORKER_ADDR",
        Some("127.0.0.1:8081"),
        "address of the worker's HTTP server (analytics API, health, readiness, metrics)",
    ),
    database::DATABASE_URL,
    var(
        "DATABASE_POOL_SIZE",
        Some("4"),
        "PostgreSQL connections in the pool",
    ),
    var(
        "DATABASE_MIGRATE",
        Some("false"),
        "apply pending migrations at start-up (the `migrate` command does it explicitly)",
    ),
    kafka::BOOTSTRAP_SERVERS,
    kafka::GROUP_ID,
    kafka::EVENTS_TOPIC,
    kafka::DLQ_TOPIC,
    kafka::CREATE_TOPICS,
    kafka::EVENTS_PARTITIONS,
    kafka::DLQ_PARTITIONS,
    kafka::ANOMALIES_PARTITIONS,
    kafka::REPLICATION_FACTOR,
    kafka::CONNECT_TIMEOUT_MS,
    kafka::CONFIG,
    var(
        "WORKER_BATCH_SIZE",
        Some("10000"),
        "most messages in one batch (its rows are split over WORKER_WRITE_LANES transactions)",
    ),
    var(
        "WORKER_BATCH_WAIT_MS",
        Some("200"),
        "longest wait to fill a batch before storing what is there",
    ),
    var(
        "WORKER_WRITE_LANES",
        Some("2"),
        "transactions a batch is written in at once, split by user (at most DATABASE_POOL_SIZE); more lets PostgreSQL use more cores",
    ),
    var(
        "WORKER_RETRY_MAX_MS",
        Some("5000"),
        "cap of the backoff between attempts while PostgreSQL fails",
    ),
    var(
        "WORKER_STALL_AFTER_SECS",
        Some("60"),
        "a partition counts as stalled when it has lag and the group's committed offset on it has not moved for this long (eventpipe_worker_group_stalled_seconds)",
    ),
    var(
        "WORKER_REJOIN_AFTER_SECS",
        Some("120"),
        "a worker holding no partitions while the group is stalled is not ready; after this long it leaves and rejoins the group",
    ),
    producer_health::UNREADY_AFTER_VAR,
    producer_health::REBUILD_AFTER_VAR,
    var(
        "WORKER_FUNCTION_RETRY_SECS",
        Some("30"),
        "as a Lambda function: how long an invocation retries a batch PostgreSQL or the DLQ refuses before it fails and the platform delivers the batch again (never past the invocation's deadline)",
    ),
    var(
        "WORKER_FUNCTION_SERVES",
        Some("kafka"),
        "as a Lambda function: `kafka` handles the batches of a Kafka event source mapping; `http` serves the worker's HTTP API (the read side, health) to API Gateway or a function URL instead",
    ),
    var(
        "WORKER_ANOMALIES",
        Some("true"),
        "detect anomalies in stored events (rules below), store them and publish them",
    ),
    var(
        "WORKER_RULES_FILE",
        None,
        "anomaly rules (TOML); unset means the built-in defaults",
    ),
    var(
        "WORKER_ANOMALY_MAX_USERS",
        Some("100000"),
        "users whose rule state is kept in memory; the least recently seen are evicted (and rebuilt from PostgreSQL when seen again)",
    ),
    kafka::ANOMALIES_TOPIC,
    var(
        "WORKER_ANALYTICS_TOKEN",
        None,
        "read token the analytics endpoints require as `Authorization: Bearer <token>`; unset leaves them open",
    ),
    var(
        "WORKER_ANALYTICS_POOL_SIZE",
        Some("2"),
        "PostgreSQL connections for analytics queries (apart from the writers')",
    ),
    var(
        "WORKER_ANALYTICS_TIMEOUT_MS",
        Some("10000"),
        "statement timeout of an analytics query; past it the request gets a 503",
    ),
    var(
        "WORKER_ANALYTICS_MAX_BUCKETS",
        Some("10000"),
        "most buckets a time series may have; more is a 400",
    ),
    var(
        "WORKER_DEDUP_WINDOW_HOURS",
        Some("1"),
        "a re-sent event (same id, another timestamp) is a duplicate when both timestamps fall on one partition's days, or at most this far apart across its boundary; a redelivered message (same timestamp) always is while its row is kept",
    ),
    var(
        "RETENTION_EVENTS_DAYS",
        None,
        "days of raw events to keep (whole partitions are dropped); unset keeps them forever",
    ),
    var(
        "RETENTION_ANOMALIES_DAYS",
        None,
        "days of anomalies to keep; unset keeps them forever",
    ),
    var(
        "RETENTION_ROLLUPS_DAYS",
        None,
        "days of counts, ingest-lag histogram and idle users to keep; unset keeps them forever",
    ),
    var(
        "RETENTION_READER_GRACE_SECS",
        Some("60"),
        "after retention moves a horizon, how long it waits before removing, so read requests that saw the old one finish on whole data (keep it above HTTP_REQUEST_TIMEOUT_SECS + 2)",
    ),
    var(
        "PARTITION_SPAN_DAYS",
        Some("1"),
        "UTC days per partition of events and anomalies (applies to partitions made from now on)",
    ),
    var(
        "PARTITION_AHEAD_DAYS",
        Some("3"),
        "days ahead of today that have their partitions made in advance",
    ),
    var(
        "WORKER_MAINTENANCE_INTERVAL_SECS",
        Some("3600"),
        "how often a worker makes partitions and applies retention (one worker at a time, under an advisory lock)",
    ),
    var(
        "WORKER_MAINTENANCE_LOCK_TIMEOUT_MS",
        Some("200"),
        "longest wait for a table lock when making or dropping a partition; a busy table is retried later instead of making writers wait",
    ),
    var(
        "WORKER_SHUTDOWN_GRACE_SECS",
        Some("10"),
        "on SIGTERM, how long the batch in flight may take to finish",
    ),
    layers::REQUEST_TIMEOUT_VAR,
    layers::BODY_TIMEOUT_VAR,
    settings::RUST_LOG_VAR,
    settings::LOG_FORMAT_VAR,
];

/// Everything the worker needs to run, each field named after its
/// variables in [`VARS`] (where their defaults are).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `WORKER_ADDR`.
    pub addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: SecretUrl,
    /// `DATABASE_POOL_SIZE`.
    pub pool_size: u32,
    /// `DATABASE_MIGRATE`.
    pub migrate: bool,
    /// `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CONNECT_TIMEOUT_MS`, `KAFKA_CONFIG`.
    pub kafka: KafkaConnection,
    /// `KAFKA_GROUP_ID`.
    pub group_id: String,
    /// `KAFKA_EVENTS_TOPIC`.
    pub events_topic: String,
    /// `KAFKA_DLQ_TOPIC`.
    pub dlq_topic: String,
    /// `KAFKA_CREATE_TOPICS`, `KAFKA_*_PARTITIONS` and
    /// `KAFKA_REPLICATION_FACTOR`: the topics made when missing.
    pub topics: TopicSettings,
    /// `WORKER_BATCH_SIZE`.
    pub batch_size: usize,
    /// `WORKER_BATCH_WAIT_MS`.
    pub batch_wait: Duration,
    /// `WORKER_WRITE_LANES`.
    pub write_lanes: usize,
    /// `WORKER_RETRY_MAX_MS`.
    pub retry_max: Duration,
    /// `WORKER_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace: Duration,
    /// `WORKER_STALL_AFTER_SECS`.
    pub stall_after: Duration,
    /// `WORKER_REJOIN_AFTER_SECS`.
    pub rejoin_after: Duration,
    /// `WORKER_FUNCTION_RETRY_SECS`.
    pub function_retry: Duration,
    /// `WORKER_FUNCTION_SERVES`.
    pub function_serves: FunctionServes,
    /// `KAFKA_UNREADY_AFTER_FAILED_SENDS` and
    /// `KAFKA_REBUILD_AFTER_REFUSED_SENDS`, for the DLQ and anomalies producer.
    pub producer_health: HealthRule,
    /// `HTTP_REQUEST_TIMEOUT_SECS` and `HTTP_BODY_TIMEOUT_SECS`.
    pub http: HttpTimeouts,
    /// The anomaly rules (`WORKER_RULES_FILE`, or the defaults); `None`
    /// when `WORKER_ANOMALIES` is false.
    pub rules: Option<Arc<RuleSet>>,
    /// `WORKER_ANOMALY_MAX_USERS`.
    pub anomaly_max_users: usize,
    /// `KAFKA_ANOMALIES_TOPIC`.
    pub anomalies_topic: String,
    /// `WORKER_ANALYTICS_TOKEN`.
    pub analytics_token: Option<Secret<String>>,
    /// `WORKER_ANALYTICS_POOL_SIZE`.
    pub analytics_pool_size: u32,
    /// `WORKER_ANALYTICS_TIMEOUT_MS`.
    pub analytics_timeout_ms: u64,
    /// `WORKER_ANALYTICS_MAX_BUCKETS`.
    pub analytics_max_buckets: usize,
    /// `WORKER_DEDUP_WINDOW_HOURS`.
    pub dedup_window: Duration,
    /// Partitions and retention.
    pub maintenance: Maintenance,
}

/// How the worker keeps partitions and applies retention.
#[derive(Debug, Clone, Copy)]
pub struct Maintenance {
    /// `RETENTION_*_DAYS`, unset by default.
    pub retention: Policy,
    /// `PARTITION_SPAN_DAYS` and `WORKER_MAINTENANCE_LOCK_TIMEOUT_MS`.
    pub layout: Layout,
    /// `PARTITION_AHEAD_DAYS`.
    pub ahead_days: u32,
    /// `WORKER_MAINTENANCE_INTERVAL_SECS`.
    pub interval: Duration,
    /// `RETENTION_READER_GRACE_SECS`.
    pub reader_grace: Duration,
}

/// `DATABASE_URL` alone (its default from [`VARS`]), for the `migrate`
/// command, which needs nothing else and must run before Kafka exists.
pub fn database_url(lookup: impl Fn(&str) -> Option<String>) -> Result<SecretUrl, ConfigError> {
    database::database_url(&Env::new(VARS, lookup))
}

impl WorkerConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable's value if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(VARS, lookup);
        Ok(WorkerConfig {
            addr: env.required("WORKER_ADDR")?,
            database_url: database::database_url(&env)?,
            pool_size: env.positive("DATABASE_POOL_SIZE")?,
            migrate: env.required("DATABASE_MIGRATE")?,
            kafka: KafkaConnection::from_env(&env)?,
            group_id: env.required(kafka::GROUP_ID.name)?,
            events_topic: env.required(kafka::EVENTS_TOPIC.name)?,
            dlq_topic: env.required(kafka::DLQ_TOPIC.name)?,
            topics: TopicSettings {
                creation: TopicCreation::from_env(&env)?,
                events_partitions: env.positive(kafka::EVENTS_PARTITIONS.name)?,
                dlq_partitions: env.positive(kafka::DLQ_PARTITIONS.name)?,
                anomalies_partitions: env.positive(kafka::ANOMALIES_PARTITIONS.name)?,
            },
            batch_size: env.positive("WORKER_BATCH_SIZE")?,
            batch_wait: Duration::from_millis(env.positive("WORKER_BATCH_WAIT_MS")?),
            write_lanes: write_lanes(&env)?,
            retry_max: Duration::from_millis(env.positive("WORKER_RETRY_MAX_MS")?),
            shutdown_grace: Duration::from_secs(env.required("WORKER_SHUTDOWN_GRACE_SECS")?),
            stall_after: Duration::from_secs(env.positive("WORKER_STALL_AFTER_SECS")?),
            rejoin_after: Duration::from_secs(env.positive("WORKER_REJOIN_AFTER_SECS")?),
            function_retry: Duration::from_secs(env.positive("WORKER_FUNCTION_RETRY_SECS")?),
            function_serves: env.required("WORKER_FUNCTION_SERVES")?,
            producer_health: HealthRule::from_env(&env)?,
            http: HttpTimeouts::from_env(&env)?,
            rules: if env.required("WORKER_ANOMALIES")? {
                Some(Arc::new(RuleSet::new(read_rules(
                    env.raw("WORKER_RULES_FILE"),
                )?)))
            } else {
                None
            },
            anomaly_max_users: env.positive("WORKER_ANOMALY_MAX_USERS")?,
            anomalies_topic: env.required(kafka::ANOMALIES_TOPIC.name)?,
            analytics_token: env
                .raw("WORKER_ANALYTICS_TOKEN")
                .filter(|t| !t.trim().is_empty())
                .map(Secret::new),
            analytics_pool_size: env.positive("WORKER_ANALYTICS_POOL_SIZE")?,
            analytics_timeout_ms: env.positive("WORKER_ANALYTICS_TIMEOUT_MS")?,
            analytics_max_buckets: env.positive("WORKER_ANALYTICS_MAX_BUCKETS")?,
            dedup_window: Duration::from_secs(
                3600 * env.positive::<u64>("WORKER_DEDUP_WINDOW_HOURS")?,
            ),
            maintenance: maintenance(&env)?,
        })
    }
}

/// `WORKER_WRITE_LANES`, which each need a connection of the pool.
fn write_lanes<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<usize, ConfigError> {
    let lanes: usize = env.positive("WORKER_WRITE_LANES")?;
    let pool: u32 = env.positive("DATABASE_POOL_SIZE")?;
    if lanes > pool as usize {
        return Err(ConfigError::new(
            "WORKER_WRITE_LANES",
            format!("{lanes} lanes need as many connections; DATABASE_POOL_SIZE is {pool}"),
        ));
    }
    Ok(lanes)
}

/// The partition and retention settings alone, for the `retention`
/// command, which needs nothing else.
pub fn maintenance_config(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Maintenance, ConfigError> {
    maintenance(&Env::new(VARS, lookup))
}

fn maintenance(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Maintenance, ConfigError> {
    let days = |name| -> Result<Option<u32>, ConfigError> {
        match env.optional::<u32>(name)? {
            Some(0) => Err(ConfigError::new(
                name,
                "must be at least 1 day (unset it to keep everything)",
            )),
            days => Ok(days),
        }
    };
    Ok(Maintenance {
        retention: Policy {
            events_days: days("RETENTION_EVENTS_DAYS")?,
            anomalies_days: days("RETENTION_ANOMALIES_DAYS")?,
            rollups_days: days("RETENTION_ROLLUPS_DAYS")?,
        },
        layout: Layout {
            span_days: env.positive("PARTITION_SPAN_DAYS")?,
            lock_timeout: Duration::from_millis(
                env.positive("WORKER_MAINTENANCE_LOCK_TIMEOUT_MS")?,
            ),
        },
        ahead_days: env.required("PARTITION_AHEAD_DAYS")?,
        interval: Duration::from_secs(env.positive("WORKER_MAINTENANCE_INTERVAL_SECS")?),
        reader_grace: Duration::from_secs(env.required("RETENTION_READER_GRACE_SECS")?),
    })
}

/// The rules in `path`, or the defaults.
fn read_rules(path: Option<String>) -> Result<Vec<rules::Rule>, ConfigError> {
    let (text, origin) = match path.filter(|p| !p.trim().is_empty()) {
        Some(path) => (
            std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new("WORKER_RULES_FILE", format!("{path}: {e}")))?,
            path,
        ),
        None => (rules::DEFAULT_RULES.to_owned(), "default rules".to_owned()),
    };
    rules::parse(&text, &origin).map_err(|e| ConfigError::new("WORKER_RULES_FILE", e))
}

impl WorkerConfig {
    /// The topics this worker reads and writes, with the partitions each
    /// is made with when missing: events, the DLQ, and anomalies when
    /// detection is on.
    pub fn needed_topics(&self) -> Vec<NeededTopic<'_>> {
        let mut needed = vec![
            NeededTopic {
                name: &self.events_topic,
                var: kafka::EVENTS_TOPIC.name,
                partitions: self.topics.events_partitions,
            },
            NeededTopic {
                name: &self.dlq_topic,
                var: kafka::DLQ_TOPIC.name,
                partitions: self.topics.dlq_partitions,
            },
        ];
        if self.rules.is_some() {
            needed.push(NeededTopic {
                name: &self.anomalies_topic,
                var: kafka::ANOMALIES_TOPIC.name,
                partitions: self.topics.anomalies_partitions,
            });
        }
        needed
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_named_errors() {
        let c = WorkerConfig::from_lookup(|n| {
            (n == "KAFKA_BOOTSTRAP_SERVERS").then(|| "k:9092".to_owned())
        })
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8081");
        assert_eq!(
            c.database_url,
            "postgres://postgres@127.0.0.1:5432/eventpipe"
        );
        assert_eq!(
            (c.events_topic.as_str(), c.dlq_topic.as_str()),
            ("events", "events.dlq")
        );
        let err = WorkerConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(err.var, "KAFKA_BOOTSTRAP_SERVERS");
        let err = WorkerConfig::from_lookup(|n| match n {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
            "WORKER_BATCH_SIZE" => Some("0".to_owned()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.var, "WORKER_BATCH_SIZE");
    }

    #[test]
    fn lanes_stalls_and_producer_health_refuse_bad_values_naming_them() {
        let cases = [
            ("WORKER_WRITE_LANES", "0"),
            ("WORKER_WRITE_LANES", "two"),
            ("WORKER_STALL_AFTER_SECS", "0"),
            ("WORKER_REJOIN_AFTER_SECS", "-1"),
            ("WORKER_FUNCTION_RETRY_SECS", "0"),
            ("WORKER_FUNCTION_SERVES", "sqs"),
            ("KAFKA_UNREADY_AFTER_FAILED_SENDS", "0"),
            ("KAFKA_REBUILD_AFTER_REFUSED_SENDS", "many"),
            ("KAFKA_CREATE_TOPICS", "maybe"),
            ("KAFKA_EVENTS_PARTITIONS", "0"),
            ("KAFKA_DLQ_PARTITIONS", "-1"),
            ("KAFKA_ANOMALIES_PARTITIONS", "three"),
            ("KAFKA_REPLICATION_FACTOR", "all"),
        ];
        for (name, value) in cases {
            let err = WorkerConfig::from_lookup(|n| match n {
                "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
                n if n == name => Some(value.to_owned()),
                _ => None,
            })
            .unwrap_err();
            assert_eq!(err.var, name, "{err}");
        }
        // Each lane needs a connection of the pool.
        let err = WorkerConfig::from_lookup(|n| match n {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
            "WORKER_WRITE_LANES" => Some("5".to_owned()),
            "DATABASE_POOL_SIZE" => Some("4".to_owned()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.var, "WORKER_WRITE_LANES");
        assert!(err.to_string().contains("DATABASE_POOL_SIZE is 4"), "{err}");
        let c =
            WorkerConfig::from_lookup(|n| (n == "KAFKA_BOOTSTRAP_SERVERS").then(|| "k".to_owned()))
                .unwrap();
        assert_eq!((c.write_lanes, c.batch_size), (2, 10_000));
    }

    #[test]
    fn retention_is_off_unless_set_and_zero_or_junk_days_are_named() {
        let none = maintenance_config(|_| None).unwrap();
        assert!(none.retention.keeps_everything());
        assert_eq!(none.layout.span_days, 1);
        let set = maintenance_config(|n| (n == "RETENTION_EVENTS_DAYS").then(|| "30".to_owned()))
            .unwrap();
        assert_eq!(set.retention.events_days, Some(30));
        for (var, value) in [
            ("RETENTION_EVENTS_DAYS", "0"),
            ("RETENTION_ROLLUPS_DAYS", "a year"),
            ("PARTITION_SPAN_DAYS", "0"),
            ("RETENTION_ANOMALIES_DAYS", "-3"),
        ] {
            let err = maintenance_config(|n| (n == var).then(|| value.to_owned())).unwrap_err();
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn a_bad_rules_file_names_the_variable_the_file_and_the_line() {
        let dir = std::env::temp_dir().join(format!("rules-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "[[rules]]\nname = \"x\"\nseverity = \"low\"\ndescription = \"d\"\nkind = \"jump\"\nfield = \"f\"\n").unwrap();
        let path = dir.to_string_lossy().into_owned();
        let err = WorkerConfig::from_lookup(|n| match n {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
            "WORKER_RULES_FILE" => Some(path.clone()),
            _ => None,
        })
        .unwrap_err();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(err.var, "WORKER_RULES_FILE");
        assert!(
            err.to_string()
                .contains(&format!("{path}: line 1: rule \"x\": needs by")),
            "{err}"
        );
        let err = WorkerConfig::from_lookup(|n| match n {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
            "WORKER_RULES_FILE" => Some("/nonexistent/rules.toml".to_owned()),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/rules.toml"), "{err}");
    }

    #[test]
    fn passwords_stay_out_of_debug() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        let c = WorkerConfig::from_lookup(|n| match n {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
            "DATABASE_URL" => Some("postgres://app:s3cret@db/x".to_owned()),
            _ => None,
        })
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = WorkerConfig::from_lookup(|n| match n {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("k".to_owned()),
            "WORKER_ANALYTICS_TOKEN" => Some("t0ken-s3cret".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.analytics_token.as_deref(), Some("t0ken-s3cret"));
        assert!(!format!("{c:?}").contains("t0ken-s3cret"));
    }
}
