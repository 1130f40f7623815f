//! `GET /ready` (Kafka answers and the server is not shutting down), for
//! load balancers and orchestrators; `GET /health` is the shared one
//! (`eventpipe_service::http::health`).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eventpipe_service::http::health::Health;

use crate::state::AppState;

/// Readiness: 200 when Kafka answers and the server takes traffic.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Kafka unreachable or shutting down", body = Health),
    ))]
pub async fn get_ready(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    Health {
        kafka: Some(app.kafka_up.load(Ordering::Relaxed)),
        shutting_down: Some(app.draining.load(Ordering::Relaxed)),
        ..Health::default()
    }
    .readiness()
}
