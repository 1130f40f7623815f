//! The spans of a batch: its own, each event's `store event`, and each
//! dead-lettering.

use std::collections::HashSet;

use eventpipe_service::telemetry::{self, KeyValue, OpenTelemetrySpanExt, Status};
use tracing::Span;

use super::prepare::Prepared;
use crate::source::Received;
use crate::state::Worker;

/// The most links a batch span records (the SDK's default limit).
const MAX_LINKS: usize = 128;

/// The batch's span: the root of its own trace, linked to each distinct
/// context its events came with (with the first such event's id, partition
/// and offset). Disabled when traces are not exported.
pub(super) fn batch_span(worker: &Worker, batch: &Prepared) -> Span {
    if !telemetry::enabled() {
        return Span::none();
    }
    let span = eventpipe_service::span!(
        parent: None,
        "batch",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = worker.config.events_topic.as_str(),
        messaging.batch.message_count = batch.messages.len(),
    );
    let mut linked = HashSet::new();
    let event_ids: std::collections::HashMap<usize, uuid::Uuid> = batch
        .rows
        .iter()
        .map(|row| (row.message, row.event.event_id))
        .collect();
    for (i, context) in batch.contexts.iter().enumerate() {
        let Some(context) = context else { continue };
        if linked.len() == MAX_LINKS || !linked.insert(context.span_id()) {
            continue;
        }
        let message = &batch.messages[i];
        let mut attributes = message_attributes(message);
        if let Some(id) = event_ids.get(&i) {
            attributes.push(KeyValue::new("eventpipe.event_id", id.to_string()));
        }
        span.add_link_with_attributes(context.clone(), attributes);
    }
    telemetry::sampled(span)
}

/// Where a message was read from, as span attributes.
fn message_attributes(message: &Received) -> Vec<KeyValue> {
    vec![
        KeyValue::new(
            "messaging.destination.partition.id",
            message.partition().to_string(),
        ),
        KeyValue::new("messaging.kafka.offset", message.offset()),
    ]
}

/// A `store event` span for each row whose context was sampled, in that
/// trace (row index, span), linked to the batch span (the current span).
pub(super) fn event_spans(batch: &Prepared) -> Vec<(usize, Span)> {
    if batch.contexts.is_empty() {
        return Vec::new();
    }
    let batch_context = telemetry::span_context(&Span::current());
    let mut spans = Vec::new();
    for (index, row) in batch.rows.iter().enumerate() {
        let Some(context) = batch.contexts[row.message]
            .as_ref()
            .filter(|c| c.is_sampled())
        else {
            continue;
        };
        let (event, message) = (&row.event, &batch.messages[row.message]);
        let span = eventpipe_service::span!(
            parent: None,
            "store event",
            otel.kind = "consumer",
            eventpipe.event_id = %event.event_id,
            eventpipe.event_type = event.event_type.as_str(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
        );
        let _ = span.set_parent(telemetry::remote_parent(context.clone()));
        span.add_link(batch_context.clone());
        spans.push((index, span));
    }
    spans
}

/// The span of putting message `i` on the DLQ, linked to the context the
/// message came with.
pub(super) fn dead_letter_span(
    worker: &Worker,
    batch: &Prepared,
    i: usize,
    reason: &str,
    error: &str,
) -> Span {
    if batch.contexts.is_empty() {
        return Span::none();
    }
    let message = &batch.messages[i];
    let span = eventpipe_service::child_span!(
        "dead_letter",
        otel.kind = "producer",
        messaging.destination.name = worker.config.dlq_topic.as_str(),
        eventpipe.dlq.reason = reason,
        messaging.destination.partition.id = message.partition(),
        messaging.kafka.offset = message.offset(),
    );
    span.set_status(Status::error(format!("{reason}: {error}")));
    if let Some(row) = batch.row_of(i) {
        span.set_attribute("eventpipe.event_id", row.event.event_id.to_string());
    }
    if let Some(context) = &batch.contexts[i] {
        span.add_link(context.clone());
    }
    span
}
