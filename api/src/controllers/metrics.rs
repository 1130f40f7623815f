//! `GET /metrics`: the Prometheus text exposition.

use axum::extract::State;
use axum::response::IntoResponse;
use eventpipe_service::http::health::metrics_text;

use crate::state::AppState;

/// Prometheus metrics of this replica.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn get_metrics(State(app): State<AppState>) -> impl IntoResponse {
    app.metrics
        .producer_queue
        .set(i64::from(app.sink.queue_depth()));
    app.metrics
        .producer_queue_max
        .set(i64::from(app.config.kafka.queue_max_messages));
    metrics_text(app.metrics.render())
}
