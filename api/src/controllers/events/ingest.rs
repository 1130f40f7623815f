//! `POST /events`: validate a request's events and answer 202 once Kafka
//! acknowledged every one of them.

use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use eventpipe_service::telemetry::{self, OpenTelemetrySpanExt, Status, TraceHeaders};
use serde::{Deserialize, Serialize};
use tracing::{Instrument, Span};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::docs;
use crate::error::{AppError, bad_request, invalid_detail, too_large};
use crate::intake;
use crate::invalid::Rejected;
use crate::sink::{FailureKind, SendError};
use crate::state::AppState;
use eventpipe_service::http::observe::{RequestId, client_context};

/// Query parameters of `POST /events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestParams {
    /// Validate and answer with receipts, but produce nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What happened to one event of the request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Kafka acknowledged the event.
    Accepted,
    /// Dry run: the event is valid; nothing was produced.
    Valid,
}

/// The receipt of one event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventReceipt {
    /// Position of the event in the request.
    #[schema(example = 0)]
    pub index: usize,
    /// The event's id: the client's, or the UUIDv7 the API assigned.
    pub event_id: Uuid,
    /// `accepted`, or `valid` for a dry run.
    pub status: ReceiptStatus,
    /// Partition of the events topic holding the event (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 3)]
    pub partition: Option<i32>,
    /// Offset of the event in that partition (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1042)]
    pub offset: Option<i64>,
}

/// The answer to an accepted (or dry-run) request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// How many events Kafka acknowledged (0 for a dry run).
    #[schema(example = 1)]
    pub accepted: usize,
    /// True when nothing was produced because `dry_run=true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// One receipt per event, in request order.
    pub results: Vec<EventReceipt>,
}

/// Ingest one event, a batch, or NDJSON.
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    params(IngestParams),
    request_body(
        description = "One event object, a JSON array of events (a batch), or NDJSON (one event per line). \
                       May be sent with `Content-Encoding: gzip`.",
        content(
            (docs::IngestBody = "application/json", examples(
                ("single" = (summary = "One event", value = json!(docs::example_single()))),
                ("batch" = (summary = "A batch", value = json!(docs::example_batch()))),
            )),
            (docs::NdjsonBody = "application/x-ndjson", example = json!(docs::example_ndjson())),
        ),
    ),
    responses(
        (status = 202, description = "Kafka acknowledged every event.", body = Receipt,
            example = json!(docs::example_receipt())),
        (status = 200, description = "Dry run: every event is valid; nothing was produced.", body = Receipt,
            example = json!(docs::example_dry_run())),
        (status = 400, description = "Malformed JSON (the message says where), bad gzip, or not UTF-8.",
            body = crate::error::Problem, content_type = "application/problem+json",
            example = json!(docs::example_problem(400))),
        (status = 401, description = "API key missing or not accepted.",
            body = crate::error::Problem, content_type = "application/problem+json",
            example = json!(docs::example_problem(401))),
        (status = 413, description = "Body, decompressed body, batch or event over its limit (stated in the message), \
                                      or more of one partition than API_MAX_BACKLOG_BYTES ever leaves.",
            body = crate::error::Problem, content_type = "application/problem+json",
            example = json!(docs::example_problem(413))),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding.",
            body = crate::error::Problem, content_type = "application/problem+json",
            example = json!(docs::example_problem(415))),
        (status = 422, description = "At least one event is invalid; nothing was produced. Every error is listed.",
            body = crate::error::Problem, content_type = "application/problem+json",
            example = json!(docs::example_problem(422))),
        (status = 429, description = "The API key's event rate is exceeded.",
            body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait")),
            example = json!(docs::example_problem(429))),
        (status = 503, description = "Kafka did not acknowledge every event (unreachable, queue full, or timed out), \
                                      or the replica is at API_MAX_IN_FLIGHT_REQUESTS requests or API_MAX_IN_FLIGHT_EVENTS events waiting for Kafka, \
                                      or the workers' backlog is at API_MAX_BACKLOG_BYTES or API_MAX_BACKLOG_MESSAGES (`overloaded`: refused at once, nothing produced). \
                                      Retrying with the same event ids is safe.",
            body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait")),
            example = json!(docs::example_problem(503))),
    ),
    security((), ("api_key" = [])),
)]
pub async fn ingest_events(
    State(app): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let result = ingest(&app, &request_id, query, &headers, body).await;
    if let Err(error) = &result {
        rejected(&Span::current(), error);
    }
    result
}

/// Records on `span` (when it is exported) why the request was refused.
fn rejected(span: &Span, error: &AppError) {
    if span.is_disabled() {
        return;
    }
    span.set_attribute("eventpipe.rejection.reason", error.reason());
    span.set_attribute("eventpipe.rejection.detail", error.trace_detail());
}

/// Runs a step of the request in its own span, which records a failure.
fn step<T>(span: Span, run: impl FnOnce() -> Result<T, AppError>) -> Result<T, AppError> {
    let result = span.in_scope(run);
    if let Err(error) = &result
        && !span.is_disabled()
    {
        rejected(&span, error);
        span.set_status(Status::error(error.trace_detail()));
    }
    result
}

async fn ingest(
    app: &AppState,
    request_id: &RequestId,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let received_at = Utc::now();
    let key = app.keys.authenticate(headers)?;
    let params: IngestParams = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| bad_request(format!("invalid query string: {e}")))?;
    let format = intake::format_of(headers)?;
    let limits = &app.config.limits;
    let decoding = eventpipe_service::child_span!("decode");
    let body = to_bytes(body, limits.max_body_bytes)
        .instrument(decoding.clone())
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large(format!(
                    "request body exceeds {} bytes, the limit",
                    limits.max_body_bytes
                ))
            } else {
                bad_request(format!("could not read the request body: {e}"))
            }
        });
    let body = step(decoding.clone(), || body)?;
    let body = step(decoding.clone(), || intake::decode(headers, &body, limits))?;
    let events = step(decoding, || {
        intake::split(format, intake::text(&body)?, limits)
    })?;

    let metrics = &app.metrics;
    metrics.events_received.inc_by(events.len() as u64);
    let reject = |error: AppError| {
        metrics
            .events_rejected
            .with_label_values(&[error.reason()])
            .inc_by(events.len() as u64);
        error
    };
    let validating = eventpipe_service::child_span!("validate", events = events.len());
    let validated = step(validating, || {
        intake::validate(&events, received_at, &app.config.rules)
    });
    if let (Err(error @ AppError::Invalid(errors)), Some(invalid)) = (&validated, &app.invalid) {
        let key_hash = app.keys.key_hash_prefix(headers);
        invalid.keep(&Rejected {
            events: &events,
            errors,
            problem_type: &error.problem_type(),
            detail: &invalid_detail(errors),
            received_at,
            request_id: &request_id.0,
            key_sha256_prefix: key_hash.as_deref(),
        });
    }
    let records = validated.map_err(reject)?;
    step(eventpipe_service::child_span!("rate_limit"), || {
        app.limiter
            .take(key, records.len())
            .map_err(|retry_after| AppError::RateLimited { retry_after })
    })
    .map_err(reject)?;

    if params.dry_run {
        let results = records
            .iter()
            .enumerate()
            .map(|(index, r)| EventReceipt {
                index,
                event_id: r.event_id,
                status: ReceiptStatus::Valid,
                partition: None,
                offset: None,
            })
            .collect();
        let receipt = Receipt {
            accepted: 0,
            dry_run: true,
            results,
        };
        return Ok((StatusCode::OK, Json(receipt)).into_response());
    }

    let admitted = app.admit(records.len()).map_err(reject)?;
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
        if let [only] = records.as_slice() {
            producing.set_attribute("eventpipe.event_id", only.event_id.to_string());
        }
        TraceHeaders::of(&telemetry::span_context(&producing))
    } else {
        client_context(headers).and_then(|context| TraceHeaders::of(&context))
    };
    let outgoing = app.sink.prepare(
        &records,
        &request_id.0,
        trace.as_ref(),
        app.backlog.placement(),
    );
    // The workers' backlog is charged before anything is produced.
    let reservation = match app.backlog.reserve(&outgoing) {
        Ok(reservation) => reservation,
        Err(error) => {
            let error = reject(error);
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
            let error = reject(produce_failure(&failure, records.len(), timeout));
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
    let results = records
        .iter()
        .zip(&delivered)
        .enumerate()
        .map(|(index, (r, d))| EventReceipt {
            index,
            event_id: r.event_id,
            status: ReceiptStatus::Accepted,
            partition: Some(d.partition),
            offset: Some(d.offset),
        })
        .collect();
    let receipt = Receipt {
        accepted: delivered.len(),
        dry_run: false,
        results,
    };
    Ok((StatusCode::ACCEPTED, Json(receipt)).into_response())
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
