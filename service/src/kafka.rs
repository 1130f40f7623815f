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

/// Asks for `topic`'s metadata through `client` until a broker the
/// cluster named (not a bootstrap address) answers, for up to `within`.
/// Blocks. An idempotent producer asks for its producer id on each
/// metadata answer, but only from such a broker: none is connected yet
/// when the first answer (the bootstrap's) arrives, and librdkafka then
/// retries only 500 ms later, which the first send would wait for. Called
/// at start-up, this has the id asked for as soon as a broker is up (a
/// Lambda cold start's first request, measured: 510 ms before, a few
/// after).
pub fn await_brokers<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    within: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero()
            || matches!(client.fetch_metadata(Some(topic), left).map(|m| m.orig_broker_id()), Ok(id) if id >= 0)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
