//! What `POST /events` does, from request to events acknowledged by Kafka:
//! [`accept`] runs every step in order and says what became of the
//! request; the handler (`controllers/events/ingest.rs`) only turns that
//! into an answer. [`body`] reads a body into validated events (media
//! types, gzip, JSON and NDJSON framing, limits, validation); [`produce`]
//! admits them, charges the workers' backlog, produces them and waits for
//! Kafka's acknowledgement.

pub mod body;
mod produce;

use axum::body::Body;
use axum::http::HeaderMap;
use chrono::Utc;
use eventpipe_service::http::observe::RequestId;
use eventpipe_service::telemetry::{OpenTelemetrySpanExt, Status};
use serde::Deserialize;
use tracing::{Instrument, Span};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::{AppError, bad_request, invalid_detail, too_large};
use crate::invalid::Rejected;
use crate::sink::Delivered;
use crate::state::AppState;

/// Query parameters of `POST /events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestParams {
    /// Validate and answer with receipts, but produce nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What became of a request that was not refused.
pub enum Accepted {
    /// `dry_run`: every event is valid; nothing was produced.
    DryRun {
        /// The events' ids, in request order.
        event_ids: Vec<Uuid>,
    },
    /// Kafka acknowledged every event.
    Produced {
        /// The events' ids, in request order.
        event_ids: Vec<Uuid>,
        /// Where each went, in the same order.
        delivered: Vec<Delivered>,
    },
}

/// Runs a request through every step, each failing with its own answer:
/// the API key (401), the query (400), the media type and body (400, 413,
/// 415), validation (422; invalid events are kept when configured), the
/// key's rate (429), then, unless a dry run, admission, the backlog bound
/// and Kafka's acknowledgement (503, 413). A refusal counts the events as
/// rejected under its reason.
pub async fn accept(
    app: &AppState,
    request_id: &RequestId,
    query: Option<&str>,
    headers: &HeaderMap,
    request: Body,
) -> Result<Accepted, AppError> {
    let received_at = Utc::now();
    let key = app.keys.authenticate(headers)?;
    let params: IngestParams = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| bad_request(format!("invalid query string: {e}")))?;
    let format = body::format_of(headers)?;
    let limits = &app.config.limits;
    let decoding = eventpipe_service::child_span!("decode");
    let read = axum::body::to_bytes(request, limits.max_body_bytes)
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
    let read = step(decoding.clone(), || read)?;
    let decoded = step(decoding.clone(), || body::decode(headers, &read, limits))?;
    let events = step(decoding, || {
        body::split(format, body::text(&decoded)?, limits)
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
        body::validate(&events, received_at, &app.config.rules)
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
    let event_ids = records.iter().map(|r| r.event_id).collect();
    if params.dry_run {
        return Ok(Accepted::DryRun { event_ids });
    }
    let delivered = produce::produce(app, request_id, headers, &records)
        .await
        .map_err(reject)?;
    Ok(Accepted::Produced {
        event_ids,
        delivered,
    })
}

/// Records on `span` (when it is exported) why the request was refused.
pub fn rejected(span: &Span, error: &AppError) {
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
