//! Liveness, readiness and metrics answers, the same on every server:
//! `GET /health` is 200 while the process serves HTTP; `GET /ready` is 200
//! only when every dependency the server checks answered its last probe,
//! the server can do its job (produce, consume) and it is not shutting
//! down, else 503 with the reason; `GET /metrics` is the Prometheus text.

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
    /// Whether the Kafka producer can deliver: false after a fatal
    /// producer error or a run of sends Kafka did not acknowledge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<bool>,
    /// Whether the worker consumes or has nothing to do: false when it
    /// holds no partitions while the group has lag that nobody reduces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consuming: Option<bool>,
    /// Whether the workers' backlog leaves room for new events (the API's
    /// readiness, with a backlog bound set): false while events are
    /// refused because a partition's backlog is at its bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<bool>,
    /// Whether the server is draining for shutdown (the API's readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutting_down: Option<bool>,
    /// Why the server is not ready, in words, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "the last 5 sends to Kafka failed (last: broker)")]
    pub reason: Option<String>,
}

impl Health {
    /// The readiness answer for these checks: 200 when every check given
    /// passes and the server is not shutting down, else 503 (with the
    /// caller's `reason`, or one naming the failed checks).
    pub fn readiness(mut self) -> (StatusCode, Json<Health>) {
        let ready = self.database != Some(false)
            && self.kafka != Some(false)
            && self.producer != Some(false)
            && self.consuming != Some(false)
            && self.backlog != Some(false)
            && self.shutting_down != Some(true);
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let reason = match (ready, self.reason.take()) {
            (true, _) => None,
            (false, Some(reason)) => Some(reason),
            (false, None) => Some(self.failed_checks()),
        };
        let body = Health {
            status: if ready { "ready" } else { "not_ready" },
            reason,
            ..self
        };
        (status, Json(body))
    }
}

impl Health {
    fn failed_checks(&self) -> String {
        let failed: Vec<&str> = [
            (self.database == Some(false), "PostgreSQL does not answer"),
            (self.kafka == Some(false), "Kafka does not answer"),
            (
                self.producer == Some(false),
                "the Kafka producer cannot deliver",
            ),
            (
                self.consuming == Some(false),
                "the worker consumes nothing while the group lags",
            ),
            (
                self.backlog == Some(false),
                "the workers' backlog is at its bound",
            ),
            (self.shutting_down == Some(true), "shutting down"),
        ]
        .into_iter()
        .filter_map(|(failed, what)| failed.then_some(what))
        .collect();
        failed.join("; ")
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
