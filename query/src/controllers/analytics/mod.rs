//! `/api/v1/analytics/*`: event counts (total, time series, breakdown) and
//! anomalies (counts, time series, recent list), read by Grafana's
//! Infinity datasource and by scripts. Times are half-open `[from, to)`,
//! epoch milliseconds or RFC 3339 in, RFC 3339 UTC out.
//!
//! When `WORKER_ANALYTICS_TOKEN` is set every route here wants
//! `Authorization: Bearer <token>`.

pub mod anomalies;
pub mod counts;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use serde::Serialize;
use utoipa::ToSchema;

use crate::analytics::params::ParamError;
use crate::analytics::{TimeRange, missing_before};
use crate::error::HttpError;
use crate::state::ReadSide;

/// The routes' common prefix.
pub const PREFIX: &str = "/api/v1/analytics";

/// Middleware: refuses requests without the read token, when one is set.
pub async fn require_read_token(
    State(read): State<Arc<ReadSide>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = read.token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => {
            HttpError::Unauthorized("the read token is not valid".to_owned()).into_response()
        }
        None => HttpError::Unauthorized(
            "missing read token: send `Authorization: Bearer <WORKER_ANALYTICS_TOKEN>`".to_owned(),
        )
        .into_response(),
    }
}

/// The query string as `T`, or a 400 saying what is malformed about it.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, HttpError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        let text = rejection.body_text();
        // serde's words, after axum's preamble: "unknown field `x`, expected one of ..."
        let message = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, why)| why)
            .replace("unknown field", "unknown parameter");
        HttpError::BadParameter(ParamError {
            parameter: "query",
            message,
        })
    })
}

/// What retention left of the range a count was asked for; every field is
/// absent when the answer is exact for the range as asked.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Retained {
    /// The count starts here instead of at `from`: retention removed the
    /// raw events of the range's first partial minute, so that minute is
    /// counted whole, from the per-minute counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-10-01T09:59:00Z")]
    pub counted_from: Option<String>,
    /// The count ends here instead of at `to`, for the same reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted_to: Option<String>,
    /// Retention removed what this answer is read from before this
    /// instant: nothing earlier is counted (`RETENTION_*_DAYS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-11-01T00:00:00Z")]
    pub complete_from: Option<String>,
}

impl Retained {
    /// For an answer over `counted` (the range as asked was `asked`), from
    /// data whole from `horizon` on.
    pub fn new(asked: &TimeRange, counted: &TimeRange, horizon: Option<DateTime<Utc>>) -> Self {
        Retained {
            counted_from: (counted.from != asked.from).then(|| time(&counted.from)),
            counted_to: (counted.to != asked.to).then(|| time(&counted.to)),
            complete_from: missing_before(horizon, counted.from).map(|h| time(&h)),
        }
    }
}

/// An instant as the responses write it.
pub fn time(t: &DateTime<Utc>) -> String {
    eventpipe_contract::rfc3339::format(t)
}
