//! The worker's HTTP error type and the policy for turning errors into
//! responses, in one place:
//!
//! - handlers return [`HttpError`]; its [`IntoResponse`] picks the status
//!   and writes an RFC 9457 `application/problem+json` body;
//! - a 400 names the query parameter that was wrong and why;
//! - 5xx bodies are opaque: the cause is logged once, here, never sent;
//! - the consuming loop and start-up use `anyhow` and `StoreError`, never this.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, ResponsesBuilder};

use crate::analytics::params::ParamError;
use crate::analytics::sql::QueryError;

/// Everything an HTTP request to the worker can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A query parameter is invalid.
    #[error("{}: {}", .0.parameter, .0.message)]
    BadParameter(ParamError),
    /// No read token, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
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
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        ResponsesBuilder::new()
            .response(
                "400",
                problem("A parameter is invalid, or the range needs more buckets than allowed; `parameter` names it"),
            )
            .response("401", problem("Read token missing or wrong"))
            .response("503", problem("PostgreSQL unavailable or too slow"))
            .build()
            .into()
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
            HttpError::Unauthorized(d) => (d, None),
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
            problem_type: format!("urn:eventpipe:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            parameter,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"eventpipe-analytics\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
