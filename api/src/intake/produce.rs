//! Producing a request's validated events: admission (the replica's
//! limit of events waiting for Kafka), the `produce` span and the trace
//! context each message carries, the workers' backlog charged before
//! anything is produced, and Kafka's acknowledgement of every event, or
//! the answer that says why not.

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use eventpipe_contract::EventRecord;
use eventpipe_service::http::observe::{RequestId, client_context};
use eventpipe_service::telemetry::{self, OpenTelemetrySpanExt, Status, TraceHeaders};
use tracing::Instrument;

use crate::error::{AppError, too_large};
use crate::sink::{Delivered, FailureKind, SendError};
use crate::state::AppState;

/// Produces `records` and waits until Kafka acknowledged every one; where
/// each went, in order.
pub(super) async fn produce(
    app: &AppState,
    request_id: &RequestId,
    headers: &HeaderMap,
    records: &[EventRecord<'_>],
) -> Result<Vec<Delivered>, AppError> {
    let metrics = &app.metrics;
    let admitted = app.admit(records.len())?;
    let producing = eventpipe_service::child_span!(
        "produce",
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.destination.name = app.config.kafka.events_topic.as_str(),
        messaging.batch.message_count = records.len(),
    );
    // The context each message carries: the produce span's when this
    // request is traced, else the client's own, passed on untouched.
    let trace = if !producing.is_none() {
        if let [only] = records {
            producing.set_attribute("eventpipe.event_id", only.event_id.to_string());
        }
        TraceHeaders::of(&telemetry::span_context(&producing))
    } else {
        client_context(headers).and_then(|context| TraceHeaders::of(&context))
    };
    let outgoing = app.sink.prepare(
        records,
        &request_id.0,
        trace.as_ref(),
        app.backlog.placement(),
    );
    // The workers' backlog is charged before anything is produced.
    let reservation = match app.backlog.reserve(&outgoing) {
        Ok(reservation) => reservation,
        Err(error) => {
            producing.set_status(Status::error(error.trace_detail()));
            return Err(error);
        }
    };
    let started = Instant::now();
    let sent = app.sink.send(outgoing).instrument(producing.clone()).await;
    reservation.settle(&sent);
    let sent = sent.into_result();
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = match sent {
        Ok(delivered) => {
            metrics
                .produce_duration
                .with_label_values(&["ok"])
                .observe(elapsed);
            delivered
        }
        Err(failure) => {
            metrics
                .produce_duration
                .with_label_values(&["error"])
                .observe(elapsed);
            metrics
                .produce_errors
                .with_label_values(&[failure.kind.label()])
                .inc_by(failure.failed as u64);
            tracing::warn!(
                request.id = %request_id.0,
                kind = failure.kind.label(),
                failed = failure.failed,
                events = records.len(),
                "Kafka did not acknowledge every event"
            );
            let timeout = app.config.kafka.message_timeout;
            let error = produce_failure(&failure, records.len(), timeout);
            producing.set_status(Status::error(error.trace_detail()));
            return Err(error);
        }
    };
    if let ([only], false) = (delivered.as_slice(), producing.is_disabled()) {
        producing.set_attribute(
            "messaging.destination.partition.id",
            only.partition.to_string(),
        );
        producing.set_attribute("messaging.kafka.offset", only.offset);
    }
    drop(producing);
    drop(admitted);
    metrics.events_accepted.inc_by(delivered.len() as u64);
    metrics.count_accepted(records.iter().map(|r| r.event_type.as_ref()));
    Ok(delivered)
}

/// The answer to a request whose events Kafka did not all acknowledge.
fn produce_failure(failure: &SendError, events: usize, timeout: Duration) -> AppError {
    let failed = failure.failed;
    let detail = match failure.kind {
        FailureKind::QueueFull => {
            "Kafka is not keeping up (the producer queue is full); retry shortly".to_owned()
        }
        FailureKind::TimedOut => format!(
            "Kafka did not acknowledge {failed} of {events} event(s) within {} ms; retrying with the same event ids is safe",
            timeout.as_millis()
        ),
        FailureKind::TooLarge => {
            return too_large(
                "Kafka refused an event as too large for the topic (message.max.bytes)",
            );
        }
        FailureKind::Broker => format!(
            "Kafka refused {failed} of {events} event(s); retrying with the same event ids is safe"
        ),
        FailureKind::Replaced => format!(
            "the Kafka producer was replaced after an error before {failed} of {events} event(s) were acknowledged; retrying with the same event ids is safe"
        ),
    };
    AppError::Unavailable {
        detail,
        retry_after: Duration::from_secs(1),
    }
}
