//! Per-request bookkeeping shared by every route: the request id (taken
//! from `X-Request-Id` when the client sends a sane one, else a UUIDv7),
//! echoed on the response and carried to Kafka in a header; and the HTTP
//! request count and latency metrics by route, method and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use crate::AppState;

/// Header carrying the request id both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accept a client's id only if it is short, printable ASCII.
fn client_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let sane = (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| s.to_owned())
}

/// Middleware: request id in, metrics and request id out.
pub async fn observe(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(client_request_id)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    request.extensions_mut().insert(RequestId(id.clone()));

    let mut response = next.run(request).await;

    let status = response.status();
    let labels = [route.as_str(), method.as_str(), status.as_str()];
    app.metrics.http_requests.with_label_values(&labels).inc();
    app.metrics
        .http_duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
