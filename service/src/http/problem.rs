//! RFC 9457 problem responses: the media type, the headers that go with a
//! status (`Retry-After` on 429/503, `WWW-Authenticate` on 401), and the
//! OpenAPI description of the problem answers a route can give. Each
//! server's `Problem` schema has its own extension fields (the API lists
//! invalid fields, the read side names the query parameter), so the body
//! type stays with the server and the way it is sent lives here.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, ResponsesBuilder};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `urn:eventpipe:problem:<slug>`: the `type` of eventpipe's problems.
pub fn problem_type(slug: &str) -> String {
    format!("urn:eventpipe:problem:{slug}")
}

/// `Retry-After` is whole seconds; never advertise 0, which invites a hot loop.
pub fn retry_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// What goes with a problem body besides its status.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProblemHeaders {
    /// `Retry-After`, for 429 and 503.
    pub retry_after: Option<Duration>,
    /// `WWW-Authenticate` challenge, for 401.
    pub challenge: Option<&'static str>,
}

/// Sends `body` as `application/problem+json` with `status`.
pub fn problem_response(
    status: StatusCode,
    body: &impl Serialize,
    extra: ProblemHeaders,
) -> Response {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(after) = extra.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(after)));
    }
    if let Some(challenge) = extra.challenge {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// The smallest problem document: what a server sends for an error it has
/// no richer body for (a route timing out, a panic, axum's own 404/405).
#[derive(Debug, Serialize)]
pub struct BareProblem {
    /// `urn:eventpipe:problem:<slug>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened.
    pub detail: String,
}

impl BareProblem {
    /// A problem for `status`, its title the status's reason phrase.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        BareProblem {
            problem_type: problem_type(slug),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

/// OpenAPI responses: each `(status, description)` as a problem document
/// whose schema is the server's `Problem` component.
pub fn problem_responses(
    answers: &[(&str, &str)],
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    answers
        .iter()
        .fold(ResponsesBuilder::new(), |builder, (status, description)| {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build();
            builder.response(*status, response)
        })
        .build()
        .into()
}
