//! `GET /health`, `GET /ready` (PostgreSQL and Kafka answered the last
//! probe) and `GET /metrics`, for orchestrators and Prometheus.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::Worker;

/// Liveness and readiness answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Whether PostgreSQL answered the last probe (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<bool>,
    /// Whether Kafka answered the last probe (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<bool>,
}

/// Liveness: answers 200 while the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn get_health() -> Json<Health> {
    Json(Health {
        status: "ok",
        database: None,
        kafka: None,
    })
}

/// Readiness: 200 when PostgreSQL and Kafka both answer.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "PostgreSQL and Kafka answer", body = Health),
        (status = 503, description = "PostgreSQL or Kafka does not answer", body = Health),
    ))]
pub async fn get_ready(State(worker): State<Arc<Worker>>) -> (StatusCode, Json<Health>) {
    let database = worker.database_up.load(Ordering::Relaxed);
    let kafka = worker.kafka_up.load(Ordering::Relaxed);
    let ready = database && kafka;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ready { "ready" } else { "not_ready" },
        database: Some(database),
        kafka: Some(kafka),
    };
    (status, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every worker metric", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn get_metrics(State(worker): State<Arc<Worker>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        worker.metrics.render(),
    )
}
