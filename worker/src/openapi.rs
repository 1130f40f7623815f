//! The worker's routes, each declared once with its documentation, and the
//! OpenAPI document they make: operations and the read side's API.
//! `openapi/worker.json` in the repository is this document; a test fails
//! when they differ, and `cargo run -p eventpipe-worker -- openapi >
//! openapi/worker.json` regenerates it.

use std::sync::Arc;

use eventpipe_service::http::health::Health;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::controllers::health;
use crate::state::Worker;

/// The document's title, description and the operations tag; the routes
/// add their paths, and the read side its schemas and security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "eventpipe worker",
        description = "Analytics over the stored events and anomalies, for Grafana's Infinity \
                       datasource and scripts, and the worker's operations endpoints. Ranges are \
                       half-open [from, to), given as epoch milliseconds or RFC 3339; buckets are \
                       UTC and start at multiples of their width since the Unix epoch. Counts are \
                       exact: redelivered events are never counted twice.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(Health)),
    tags((name = "operations", description = "Health, readiness and metrics")),
)]
pub struct WorkerDoc;

/// The worker's own routes (liveness, readiness, metrics).
pub fn operations() -> OpenApiRouter<Arc<Worker>> {
    OpenApiRouter::with_openapi(WorkerDoc::openapi())
        .routes(routes!(eventpipe_service::http::health::get_health))
        .routes(routes!(health::get_ready))
        .routes(routes!(health::get_metrics))
}

/// The whole document: the worker's operations and the read side's API.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = operations().into_openapi();
    document.merge(eventpipe_query::router().into_openapi());
    document
}

/// [`document`] as pretty JSON, exactly as committed under `openapi/`.
pub fn document_json() -> String {
    eventpipe_service::http::openapi::document_json(&document())
}
