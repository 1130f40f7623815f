//! The read side's HTTP error type and the policy for turning errors into
//! responses, in one place:
//!
//! - handlers return [`HttpError`]; its [`IntoResponse`] picks the status
//!   and writes an RFC 9457 `application/problem+json` body;
//! - a 400 names the query parameter that was wrong and why;
//! - 5xx bodies are opaque: the cause is logged once, here, never sent;
//! - the consuming loop and start-up use `anyhow` and `StoreError`, never this.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use eventpipe_service::http::problem::{
    ProblemHeaders, problem_response, problem_responses, problem_type,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Response};

use crate::analytics::params::ParamError;
use crate::db::QueryError;

/// Everything a read-side request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A query parameter is invalid.
    #[error("{}: {}", .0.parameter, .0.message)]
    BadParameter(ParamError),
    /// No read token, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// What the path names is not (yet) stored.
    #[error("{0}")]
    NotFound(String),
    /// PostgreSQL did not answer in time, or at all.
    #[error(transparent)]
    Unavailable(QueryError),
}

impl From<ParamError> for HttpError {
    fn from(e: ParamError) -> Self {
        HttpError::BadParameter(e)
    }
}

impl From<QueryError> for HttpError {
    fn from(e: QueryError) -> Self {
        HttpError::Unavailable(e)
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, for clients to switch on.
    #[serde(rename = "type")]
    #[schema(example = "urn:eventpipe:problem:invalid-parameter")]
    pub problem_type: String,
    /// Short summary of the kind of problem.
    #[schema(example = "Invalid query parameter")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong with this request.
    #[schema(
        example = "interval: must be one of 1m, 5m, 10m, 15m, 30m, 1h, 6h, 12h, 1d, got \"2m\""
    )]
    pub detail: String,
    /// The query parameter at fault, for `invalid-parameter` problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "interval")]
    pub parameter: Option<String>,
}

/// The error answers every analytics route can give, for its OpenAPI
/// `responses(...)`.
pub struct AnalyticsErrors;

impl utoipa::IntoResponses for AnalyticsErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            (
                "400",
                "A parameter is invalid, or the range needs more buckets than allowed; `parameter` names it",
            ),
            ("401", "Read token missing or wrong"),
            ("503", "PostgreSQL unavailable or too slow"),
        ])
    }
}

/// The error answers of a route that looks one thing up by its path.
pub struct LookupErrors;

impl utoipa::IntoResponses for LookupErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            ("400", "The path's id is malformed; `parameter` names it"),
            ("401", "Read token missing or wrong"),
            ("404", "Not stored (yet)"),
            ("503", "PostgreSQL unavailable or too slow"),
        ])
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> axum::response::Response {
        let (status, slug, title) = match &self {
            HttpError::BadParameter(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid query parameter",
            ),
            HttpError::Unauthorized(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            }
            HttpError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            HttpError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
        };
        let (detail, parameter) = match self {
            HttpError::BadParameter(e) => (
                format!("{}: {}", e.parameter, e.message),
                Some(e.parameter.to_owned()),
            ),
            HttpError::Unauthorized(d) | HttpError::NotFound(d) => (d, None),
            HttpError::Unavailable(QueryError::TimedOut(ms)) => (
                format!("the query took longer than {ms} ms; shorten the range or filter it"),
                None,
            ),
            HttpError::Unavailable(cause) => {
                tracing::error!(error = %cause, "analytics query failed");
                ("the database is unavailable; retry later".to_owned(), None)
            }
        };
        let problem = Problem {
            problem_type: problem_type(slug),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            parameter,
        };
        let headers = ProblemHeaders {
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(Duration::from_secs(5)),
            challenge: (status == StatusCode::UNAUTHORIZED)
                .then_some("Bearer realm=\"eventpipe-analytics\""),
        };
        problem_response(status, &problem, headers)
    }
}
