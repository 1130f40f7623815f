//! `GET /ready` (Kafka answers, the producer can deliver, the workers'
//! backlog leaves room and the server is not shutting down), for load balancers and orchestrators; `GET /health`
//! is the shared one (`eventpipe_service::http::health`).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eventpipe_service::http::health::Health;

use crate::state::AppState;

/// Readiness: 200 when Kafka answers, the producer can deliver, the
/// workers' backlog is under its bound (when one is set) and the server
/// takes traffic; 503 with the reason otherwise.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Kafka unreachable, the producer failing (fatal error or a run of failed sends), the workers' backlog at its bound (API_MAX_BACKLOG_*), or shutting down; `reason` says which", body = Health),
    ))]
pub async fn get_ready(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let problem = app.sink.health().problem();
    let backlog = app
        .progress
        .is_some()
        .then(|| app.backlog.problem())
        .flatten();
    Health {
        kafka: Some(app.kafka.up()),
        producer: Some(problem.is_none()),
        backlog: app.progress.is_some().then_some(backlog.is_none()),
        shutting_down: Some(app.draining.load(Ordering::Relaxed)),
        reason: app.kafka.problem().or(problem).or(backlog),
        ..Health::default()
    }
    .readiness()
}
