//! Kafka client plumbing every service shares: the base client settings
//! and librdkafka's logs and errors routed into `tracing`. Each service
//! keeps its own module for what it does with Kafka.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};

use crate::telemetry::{TRACEPARENT, TRACESTATE, TraceHeaders};

/// `headers` plus the W3C trace context headers of `trace`, when given.
pub fn with_trace(headers: OwnedHeaders, trace: Option<&TraceHeaders>) -> OwnedHeaders {
    let Some(trace) = trace else {
        return headers;
    };
    let headers = headers.insert(Header {
        key: TRACEPARENT,
        value: Some(&trace.traceparent),
    });
    match &trace.tracestate {
        Some(state) => headers.insert(Header {
            key: TRACESTATE,
            value: Some(state),
        }),
        None => headers,
    }
}

/// Settings every eventpipe client starts from: the brokers, a client id,
/// no topic auto-creation (topics are created on purpose with their
/// partition counts, never as a side effect of a metadata request), quick
/// reconnects, then the operator's extra properties (`KAFKA_CONFIG`). What a
/// service sets afterwards for its guarantees (`acks=all`, idempotence,
/// manual offset commits) cannot be overridden that way.
pub fn client_config(
    bootstrap_servers: &str,
    client_id: &str,
    extra: &[(String, String)],
) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", client_id)
        .set("allow.auto.create.topics", "false")
        // Come back within a second of a broker returning, not ten.
        .set("reconnect.backoff.max.ms", "1000");
    for (key, value) in extra {
        client.set(key, value);
    }
    client
}

/// Logs a librdkafka log line through `tracing`.
pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        _ => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// Logs a client-level Kafka error through `tracing`.
pub fn error(error: &KafkaError, reason: &str) {
    tracing::warn!(error = %error, "kafka client error: {reason}");
}
