//! Liveness, readiness and metrics answers, the same on every server:
//! `GET /health` is 200 while the process serves HTTP; `GET /ready` is 200
//! only when every dependency the server checks answered its last probe
//! and it is not shutting down; `GET /metrics` is the Prometheus text.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

/// Liveness and readiness answers. A server fills in the dependencies it
/// checks; the others are left out of the body.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Whether PostgreSQL answered the last probe (the worker's readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<bool>,
    /// Whether Kafka answered the last probe (readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<bool>,
    /// Whether the server is draining for shutdown (the API's readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutting_down: Option<bool>,
}

impl Health {
    /// The readiness answer for these checks: 200 when every dependency
    /// given answers and the server is not shutting down, else 503.
    pub fn readiness(self) -> (StatusCode, Json<Health>) {
        let ready = self.database != Some(false)
            && self.kafka != Some(false)
            && self.shutting_down != Some(true);
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = Health {
            status: if ready { "ready" } else { "not_ready" },
            ..self
        };
        (status, Json(body))
    }
}

/// Liveness: answers 200 while the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn get_health() -> Json<Health> {
    Json(Health {
        status: "ok",
        ..Health::default()
    })
}

/// A Prometheus text exposition as a response.
pub fn metrics_text(rendered: String) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        rendered,
    )
}
