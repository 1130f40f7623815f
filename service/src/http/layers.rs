//! The layers every server wears, outermost first:
//!
//! - panics in a handler are caught and answered 500 (problem+json, the
//!   panic logged), so one bad request cannot take the connection's task
//!   down silently;
//! - a request taking longer than `HTTP_REQUEST_TIMEOUT_SECS` is answered
//!   503 with `Retry-After` (a backstop: the API's own Kafka timeouts
//!   answer first);
//! - a client sending its body slower than `HTTP_BODY_TIMEOUT_SECS` allows
//!   has the read fail, which the route answers as a bad request;
//! - any error answer still without a body (axum's own 404/405, the
//!   timeout's 503) gets a problem document.

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use super::problem::{BareProblem, ProblemHeaders, problem_response};
use crate::settings::{ConfigError, Env, Var, var};

/// The request timeout's variable.
pub const REQUEST_TIMEOUT_VAR: Var = var(
    "HTTP_REQUEST_TIMEOUT_SECS",
    Some("30"),
    "longest a request may take before it is answered 503",
);
/// The body timeout's variable.
pub const BODY_TIMEOUT_VAR: Var = var(
    "HTTP_BODY_TIMEOUT_SECS",
    Some("10"),
    "longest a client may take to send a request body",
);

/// How long requests and their bodies may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// `HTTP_REQUEST_TIMEOUT_SECS`.
    pub request: Duration,
    /// `HTTP_BODY_TIMEOUT_SECS`.
    pub body: Duration,
}

impl HttpTimeouts {
    /// Reads both variables (which must be in the service's list).
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(HttpTimeouts {
            request: Duration::from_secs(env.positive::<u64>(REQUEST_TIMEOUT_VAR.name)?),
            body: Duration::from_secs(env.positive::<u64>(BODY_TIMEOUT_VAR.name)?),
        })
    }
}

/// `router` wearing the layers above.
pub fn protect(router: Router, timeouts: HttpTimeouts) -> Router {
    router
        .layer(RequestBodyTimeoutLayer::new(timeouts.body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeouts.request,
        ))
        .layer(axum::middleware::map_response(problem_for_bare_errors))
        .layer(CatchPanicLayer::custom(answer_panic))
}

fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    let body = BareProblem::new(
        status,
        "internal",
        "an internal error occurred; it has been logged",
    );
    problem_response(status, &body, ProblemHeaders::default())
}

async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    let (slug, detail, retry_after) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no route here; see /docs".to_owned(), None),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this route does not take that method; see /docs".to_owned(),
            None,
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the request took too long; retry later".to_owned(),
            Some(Duration::from_secs(1)),
        ),
        other => ("error", other.to_string(), None),
    };
    let mut answer = problem_response(
        status,
        &BareProblem::new(status, slug, detail),
        ProblemHeaders {
            retry_after,
            challenge: None,
        },
    );
    // Keep what the original answer said (e.g. `Allow` on a 405).
    for (name, value) in response.headers() {
        answer.headers_mut().entry(name).or_insert(value.clone());
    }
    answer.into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::{Body, Bytes};
    use axum::http::Request;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    const SHORT: HttpTimeouts = HttpTimeouts {
        request: Duration::from_millis(1000),
        body: Duration::from_millis(100),
    };

    async fn panics() -> &'static str {
        panic!("boom")
    }

    fn app() -> Router {
        let router = Router::new()
            .route("/panic", get(panics))
            .route(
                "/slow",
                get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { body.len().to_string() }),
            );
        protect(router, SHORT)
    }

    async fn answer(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn get_request(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem() {
        let (status, headers, body) = answer(get_request("/panic")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("urn:eventpipe:problem:internal"), "{body}");
        assert!(
            !body.contains("boom"),
            "the panic message must not leak: {body}"
        );
    }

    #[tokio::test]
    async fn a_request_past_the_timeout_is_a_503_problem_with_retry_after() {
        let (status, headers, body) = answer(get_request("/slow")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert!(body.contains("took too long"), "{body}");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let (status, headers, body) = answer(get_request("/nowhere")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("urn:eventpipe:problem:not-found"), "{body}");
        let (status, headers, body) = answer(get_request("/echo")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "POST");
        assert!(body.contains("method-not-allowed"), "{body}");
    }

    #[tokio::test]
    async fn a_body_sent_too_slowly_fails_the_read() {
        // A body that never sends a byte: the read must fail after the
        // body timeout, well before the request timeout would answer.
        let stream = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let request = Request::post("/echo")
            .body(Body::from_stream(stream))
            .unwrap();
        let (status, _, body) = answer(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}
