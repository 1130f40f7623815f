//! `GET /health` (the process is up) and `GET /ready` (Kafka answers and the
//! server is not shutting down), for load balancers and orchestrators.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// Liveness and readiness answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Whether the last broker probe succeeded (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<bool>,
    /// Whether the server is draining for shutdown (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutting_down: Option<bool>,
}

/// Liveness: answers 200 while the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn get_health() -> Json<Health> {
    Json(Health {
        status: "ok",
        kafka: None,
        shutting_down: None,
    })
}

/// Readiness: 200 when Kafka answers and the server takes traffic.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Kafka unreachable or shutting down", body = Health),
    ))]
pub async fn get_ready(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let kafka = app.kafka_up.load(Ordering::Relaxed);
    let draining = app.draining.load(Ordering::Relaxed);
    let ready = kafka && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ready { "ready" } else { "not_ready" },
        kafka: Some(kafka),
        shutting_down: Some(draining),
    };
    (status, Json(body))
}
