//! `POST /events`: the route, its documentation, and the answer. What a
//! request goes through (auth, decoding, validation, limits, producing) is
//! [`intake::accept`]; this maps its outcome to receipts.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::ToSchema;
use uuid::Uuid;

use super::docs;
use crate::error::AppError;
use crate::intake::{self, Accepted, rejected};
use crate::state::AppState;
use eventpipe_service::http::observe::RequestId;

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
    params(intake::IngestParams),
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
    let accepted = intake::accept(&app, &request_id, query.as_deref(), &headers, body).await;
    match accepted {
        Ok(accepted) => Ok(answer(accepted)),
        Err(error) => {
            rejected(&Span::current(), &error);
            Err(error)
        }
    }
}

/// The receipts of what [`intake::accept`] accepted: 200 for a dry run,
/// 202 once Kafka acknowledged every event.
fn answer(accepted: Accepted) -> Response {
    match accepted {
        Accepted::DryRun { event_ids } => {
            let results = event_ids
                .into_iter()
                .enumerate()
                .map(|(index, event_id)| EventReceipt {
                    index,
                    event_id,
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
            (StatusCode::OK, Json(receipt)).into_response()
        }
        Accepted::Produced {
            event_ids,
            delivered,
        } => {
            let results = event_ids
                .into_iter()
                .zip(&delivered)
                .enumerate()
                .map(|(index, (event_id, d))| EventReceipt {
                    index,
                    event_id,
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
            (StatusCode::ACCEPTED, Json(receipt)).into_response()
        }
    }
}
