//! `GET /ready` (PostgreSQL and Kafka answered the last probe, the producer
//! can deliver, and the worker is not idle while its group stalls) and
//! `GET /metrics`, for orchestrators and Prometheus; `GET /health` is the
//! shared one (`eventpipe_service::http::health`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use eventpipe_service::http::health::{Health, metrics_text};

use crate::state::Worker;

/// Readiness: 200 when PostgreSQL and Kafka answer, the DLQ and anomalies
/// producer can deliver, and the worker is not sitting idle while the
/// group's lag goes unconsumed; 503 with the reason otherwise.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "PostgreSQL and Kafka answer and the worker does its job", body = Health),
        (status = 503, description = "PostgreSQL or Kafka does not answer, the producer is failing, or the worker holds no partition while the group stalls; `reason` says which", body = Health),
    ))]
pub async fn get_ready(State(worker): State<Arc<Worker>>) -> (StatusCode, Json<Health>) {
    let producer = worker.source.producer_health().problem();
    let idle = worker
        .idle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Health {
        database: Some(worker.database_up.load(Ordering::Relaxed)),
        kafka: Some(worker.kafka.up()),
        producer: Some(producer.is_none()),
        consuming: Some(idle.is_none()),
        reason: worker.kafka.problem().or(idle).or(producer),
        ..Health::default()
    }
    .readiness()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every worker metric", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn get_metrics(State(worker): State<Arc<Worker>>) -> impl IntoResponse {
    metrics_text(worker.metrics.render())
}
