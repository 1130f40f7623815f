//! Per-request bookkeeping every route gets: the request id (the client's
//! `X-Request-Id` when it is sane, else a UUIDv7), put in the request's
//! extensions for handlers (the API carries it to Kafka) and echoed on the
//! response; the request count and latency by route, method and status;
//! and, when traces are exported, the request's server span, continuing
//! the client's W3C `traceparent` when it sent one.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use tracing::Instrument;
use uuid::Uuid;

use crate::telemetry::{self, OpenTelemetrySpanExt, TraceHeaders};

/// Header carrying the request id both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Latency buckets of the request histogram, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A server's request count and latency, by route, method and status.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Requests served.
    pub requests: IntCounterVec,
    /// Request latency.
    pub duration: HistogramVec,
}

impl HttpMetrics {
    /// The two metrics under the server's names for them.
    pub fn new(requests_total: &str, duration_seconds: &str) -> Result<Self, prometheus::Error> {
        let labels = &["route", "method", "status"];
        Ok(HttpMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    requests_total,
                    "HTTP requests served, by route, method and status",
                ),
                labels,
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    duration_seconds,
                    "HTTP request latency, by route, method and status",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )?,
        })
    }

    /// For the server's registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.duration.clone()),
        ]
    }
}

/// Accept a client's id only if it is short, printable ASCII.
fn client_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let sane = (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| s.to_owned())
}

/// Routes scraped or probed every few seconds: not traced.
const UNTRACED: &[&str] = &["/metrics", "/health", "/ready", "unmatched"];

/// The request's server span (disabled when traces are not exported or
/// the route is a probe), child of the client's `traceparent` if any.
fn server_span(request: &Request, route: &str, id: &str) -> tracing::Span {
    if !telemetry::enabled() || UNTRACED.contains(&route) {
        return tracing::Span::none();
    }
    let parent = client_context(request.headers());
    if !telemetry::trace_request(parent.as_ref()) {
        return tracing::Span::none();
    }
    let method = request.method().as_str();
    let span = crate::span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        request.id = id,
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(telemetry::remote_parent(parent));
    }
    telemetry::decided(span)
}

/// The span context of the client's `traceparent`/`tracestate` headers,
/// if they are well-formed.
pub fn client_context(headers: &axum::http::HeaderMap) -> Option<telemetry::SpanContext> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    TraceHeaders::parse(
        header(telemetry::TRACEPARENT)?,
        header(telemetry::TRACESTATE),
    )
}

/// Middleware: request id in, metrics and request id out. Install with
/// `axum::middleware::from_fn_with_state(metrics, observe)`.
pub async fn observe(
    State(metrics): State<HttpMetrics>,
    mut request: Request,
    next: Next,
) -> Response {
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
    let span = server_span(&request, &route, &id);
    request.extensions_mut().insert(RequestId(id.clone()));

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    let labels = [route.as_str(), method.as_str(), status.as_str()];
    metrics.requests.with_label_values(&labels).inc();
    metrics
        .duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
