//! The Kafka settings the API, the worker and the operations commands
//! share, each variable declared once here with its default and
//! description: a service's own list includes those it reads, so
//! `--help`, docs/CONFIGURATION.md and errors show the same default
//! everywhere.

use std::time::Duration;

use eventpipe_contract::kafka;

use super::{ConfigError, Env, Secret, Var, var};

/// `KAFKA_BOOTSTRAP_SERVERS`.
pub const BOOTSTRAP_SERVERS: Var = var(
    "KAFKA_BOOTSTRAP_SERVERS",
    None,
    "Kafka brokers, host:port[,host:port] (required)",
);
/// `KAFKA_CONNECT_TIMEOUT_MS`.
pub const CONNECT_TIMEOUT_MS: Var = var(
    "KAFKA_CONNECT_TIMEOUT_MS",
    Some("10000"),
    "how long to wait for Kafka to answer (at start-up, or for a command) before failing",
);
/// `KAFKA_CONFIG`.
pub const CONFIG: Var = var(
    "KAFKA_CONFIG",
    None,
    "extra librdkafka properties, key=value;key=value (e.g. security.protocol=SASL_SSL;sasl.mechanism=PLAIN); values are never logged",
);
/// `KAFKA_EVENTS_TOPIC`.
pub const EVENTS_TOPIC: Var = var(
    "KAFKA_EVENTS_TOPIC",
    Some(kafka::EVENTS_TOPIC),
    "the events topic: the API produces accepted events to it, the workers consume it",
);
/// `KAFKA_DLQ_TOPIC`.
pub const DLQ_TOPIC: Var = var(
    "KAFKA_DLQ_TOPIC",
    Some(kafka::DLQ_TOPIC),
    "dead-letter topic for messages that cannot be stored",
);
/// `KAFKA_ANOMALIES_TOPIC`.
pub const ANOMALIES_TOPIC: Var = var(
    "KAFKA_ANOMALIES_TOPIC",
    Some(kafka::ANOMALIES_TOPIC),
    "topic detected anomalies are published to",
);
/// `KAFKA_GROUP_ID`.
pub const GROUP_ID: Var = var(
    "KAFKA_GROUP_ID",
    Some(kafka::GROUP_ID),
    "the workers' consumer group: they share its partitions, and its committed offsets say what is stored (the API's backlog bounds, `eventpipe status`)",
);
/// `KAFKA_CREATE_TOPICS`.
pub const CREATE_TOPICS: Var = var(
    "KAFKA_CREATE_TOPICS",
    Some("true"),
    "create the topics this service needs (API: events; worker: events, DLQ, anomalies) when missing, at start-up and whenever the readiness probe finds one gone",
);
/// `KAFKA_REPLICATION_FACTOR`.
pub const REPLICATION_FACTOR: Var = var(
    "KAFKA_REPLICATION_FACTOR",
    Some("-1"),
    "replication factor of topics this service creates (-1: the broker's default)",
);
/// `KAFKA_EVENTS_PARTITIONS`.
pub const EVENTS_PARTITIONS: Var = var(
    "KAFKA_EVENTS_PARTITIONS",
    Some("6"),
    "partitions of the events topic when this service creates it",
);
/// `KAFKA_DLQ_PARTITIONS`.
pub const DLQ_PARTITIONS: Var = var(
    "KAFKA_DLQ_PARTITIONS",
    Some("1"),
    "partitions of the DLQ topic when the worker creates it",
);
/// `KAFKA_ANOMALIES_PARTITIONS`.
pub const ANOMALIES_PARTITIONS: Var = var(
    "KAFKA_ANOMALIES_PARTITIONS",
    Some("3"),
    "partitions of the anomalies topic when the worker creates it",
);

/// Where Kafka is and how to reach it.
#[derive(Debug, Clone)]
pub struct KafkaConnection {
    /// [`BOOTSTRAP_SERVERS`].
    pub bootstrap_servers: String,
    /// [`CONNECT_TIMEOUT_MS`].
    pub connect_timeout: Duration,
    /// [`CONFIG`]: may hold credentials, so the values are secret.
    pub properties: Vec<(String, Secret<String>)>,
}

impl KafkaConnection {
    /// Reads [`BOOTSTRAP_SERVERS`], [`CONNECT_TIMEOUT_MS`] and [`CONFIG`].
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(KafkaConnection {
            bootstrap_servers: env.required(BOOTSTRAP_SERVERS.name)?,
            connect_timeout: connect_timeout(env)?,
            properties: properties(env)?,
        })
    }
}

/// [`CONNECT_TIMEOUT_MS`].
pub fn connect_timeout<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(
        env.positive(CONNECT_TIMEOUT_MS.name)?,
    ))
}

/// [`CONFIG`], its values secret.
pub fn properties<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<(String, Secret<String>)>, ConfigError> {
    Ok(env
        .key_values(CONFIG.name)?
        .into_iter()
        .map(|(key, value)| (key, Secret::new(value)))
        .collect())
}

/// How a service makes the topics it needs when they are missing.
#[derive(Debug, Clone, Copy)]
pub struct TopicCreation {
    /// [`CREATE_TOPICS`].
    pub create: bool,
    /// [`REPLICATION_FACTOR`].
    pub replication_factor: i32,
}

impl TopicCreation {
    /// Reads [`CREATE_TOPICS`] and [`REPLICATION_FACTOR`].
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(TopicCreation {
            create: env.required(CREATE_TOPICS.name)?,
            replication_factor: env.required(REPLICATION_FACTOR.name)?,
        })
    }
}
