//! The API's one error type and the policy for turning errors into HTTP
//! responses, all in one place:
//!
//! - handlers return [`AppError`]; its [`IntoResponse`] picks the status code
//!   and writes an RFC 9457 `application/problem+json` body;
//! - 4xx bodies say exactly what was wrong, so a client can fix its request;
//! - 5xx bodies are opaque: the cause is logged once, here, never sent;
//! - start-up and background code uses `anyhow`.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventpipe_contract::FieldError;
pub use eventpipe_service::http::problem::PROBLEM_JSON;
use eventpipe_service::http::problem::{
    ProblemHeaders, problem_response, problem_type, retry_secs,
};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body is not what it claims to be (malformed JSON, bad gzip, not UTF-8).
    #[error("{0}")]
    BadRequest(String),
    /// No API key, or one that is not configured.
    #[error("{0}")]
    Unauthorized(String),
    /// A size or count limit was exceeded; the message states the limit.
    #[error("{0}")]
    TooLarge(String),
    /// Content-Type or Content-Encoding the API does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// One or more events broke the contract; nothing was produced.
    #[error("{} invalid event(s)", .0.len())]
    Invalid(Vec<EventError>),
    /// The API key's rate was exceeded.
    #[error("rate limit exceeded")]
    RateLimited {
        /// When the request would fit in the key's bucket again.
        retry_after: Duration,
    },
    /// Kafka did not acknowledge every event in time, or cannot take more now.
    #[error("{detail}")]
    Unavailable {
        /// What happened, without internals.
        detail: String,
        /// How long a client should wait before retrying.
        retry_after: Duration,
    },
    /// The replica is at one of its limits (`API_MAX_IN_FLIGHT_REQUESTS`,
    /// `API_MAX_IN_FLIGHT_EVENTS`): the request is refused at once, rather
    /// than queued behind the others, and nothing of it is produced.
    #[error("overloaded")]
    Overloaded {
        /// What is at its limit, and the variable setting it.
        detail: String,
        /// How long a client should wait before retrying.
        retry_after: Duration,
    },
    /// A bug or an unexpected failure; logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The `detail` of an invalid-events problem.
pub fn invalid_detail(errors: &[EventError]) -> String {
    let events = errors
        .iter()
        .map(|e| e.index)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    format!(
        "{events} event(s) invalid ({} error(s)); nothing was accepted",
        errors.len()
    )
}

/// One invalid field of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventError {
    /// Position of the event in the request (0 for a single event; the
    /// event's position among the non-blank lines for NDJSON).
    #[schema(example = 1)]
    pub index: usize,
    /// JSON pointer to the field, relative to the event.
    #[schema(example = "/payload/amount")]
    pub pointer: String,
    /// What is wrong with it.
    #[schema(example = "must be a number >= 0, got -5")]
    pub message: String,
}

impl EventError {
    /// Places a field error at event `index`.
    pub fn at(index: usize, error: FieldError) -> Self {
        EventError {
            index,
            pointer: error.pointer,
            message: error.message,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, for clients to switch on.
    #[serde(rename = "type")]
    #[schema(example = "urn:eventpipe:problem:invalid-events")]
    pub problem_type: String,
    /// Short summary of the kind of problem.
    #[schema(example = "Invalid events")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong with this request.
    #[schema(example = "1 of 2 events is invalid; nothing was accepted")]
    pub detail: String,
    /// Every invalid field, for `invalid-events` problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EventError>,
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } | AppError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `type` slug and `title` of the problem document.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            AppError::BadRequest(_) => ("malformed-request", "Malformed request"),
            AppError::Unauthorized(_) => ("unauthorized", "Unauthorized"),
            AppError::TooLarge(_) => ("too-large", "Request too large"),
            AppError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            AppError::Invalid(_) => ("invalid-events", "Invalid events"),
            AppError::RateLimited { .. } => ("rate-limited", "Rate limit exceeded"),
            AppError::Unavailable { .. } => ("unavailable", "Service unavailable"),
            AppError::Overloaded { .. } => ("overloaded", "Overloaded"),
            AppError::Internal(_) => ("internal", "Internal server error"),
        }
    }

    /// The rejection reason label used by the events-rejected metric.
    pub fn reason(&self) -> &'static str {
        self.kind().0
    }

    /// What a trace records of the failure: the message, with the first
    /// few field errors for invalid events; never an internal cause.
    pub fn trace_detail(&self) -> String {
        match self {
            AppError::Invalid(errors) => {
                let mut detail = self.to_string();
                for e in errors.iter().take(5) {
                    detail.push_str(&format!("; [{}]{}: {}", e.index, e.pointer, e.message));
                }
                detail
            }
            AppError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// The problem `type` URI this error answers with.
    pub fn problem_type(&self) -> String {
        problem_type(self.kind().0)
    }

    fn into_problem(self) -> (Problem, Option<Duration>) {
        let status = self.status().as_u16();
        let (slug, title) = self.kind();
        let (detail, errors, retry_after) = match self {
            AppError::BadRequest(d)
            | AppError::Unauthorized(d)
            | AppError::TooLarge(d)
            | AppError::UnsupportedMediaType(d) => (d, Vec::new(), None),
            AppError::Invalid(errors) => (invalid_detail(&errors), errors, None),
            AppError::RateLimited { retry_after } => (
                format!(
                    "this API key's event rate is exceeded; retry after {} s",
                    retry_secs(retry_after)
                ),
                Vec::new(),
                Some(retry_after),
            ),
            AppError::Unavailable {
                detail,
                retry_after,
            } => (detail, Vec::new(), Some(retry_after)),
            AppError::Overloaded {
                detail,
                retry_after,
            } => (
                format!(
                    "{detail}; nothing of this request was produced; retry after {} s",
                    retry_secs(retry_after)
                ),
                Vec::new(),
                Some(retry_after),
            ),
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed");
                (
                    "an internal error occurred; it has been logged".to_owned(),
                    Vec::new(),
                    None,
                )
            }
        };
        let problem = Problem {
            problem_type: problem_type(slug),
            title: title.to_owned(),
            status,
            detail,
            errors,
        };
        (problem, retry_after)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (problem, retry_after) = self.into_problem();
        let challenge = (status == StatusCode::UNAUTHORIZED).then_some("Bearer");
        problem_response(
            status,
            &problem,
            ProblemHeaders {
                retry_after,
                challenge,
            },
        )
    }
}

/// Shorthand for a 400.
pub fn bad_request(detail: impl Into<String>) -> AppError {
    AppError::BadRequest(detail.into())
}

/// Shorthand for a 413.
pub fn too_large(detail: impl Into<String>) -> AppError {
    AppError::TooLarge(detail.into())
}

/// Shorthand for a 415.
pub fn unsupported_media_type(detail: impl Into<String>) -> AppError {
    AppError::UnsupportedMediaType(detail.into())
}
