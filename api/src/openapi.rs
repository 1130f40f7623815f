//! The API's routes, each declared once with its documentation, and the
//! OpenAPI document they make: every route, schema, status code and example.
//! `openapi/api.json` in the repository is this document; a test fails when
//! they differ, and `cargo run -p eventpipe-api -- openapi > openapi/api.json`
//! regenerates it.

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use eventpipe_contract::schema::WireEvent;
use eventpipe_service::http::health::Health;
use eventpipe_service::http::openapi::BearerScheme;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::controllers::events::docs::{IngestBody, NdjsonBody};
use crate::controllers::events::ingest;
use crate::controllers::{health, metrics};
use crate::error::{AppError, EventError, Problem};
use crate::state::AppState;

/// `Authorization: Bearer <key>`.
const API_KEY: BearerScheme = BearerScheme {
    name: "api_key",
    description: "An API key, when the server has keys configured (API_KEY_SHA256 or API_KEYS_FILE).",
};

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "eventpipe ingestion API",
        description = "Accepts events and produces them to Kafka with acks=all. A 202 means Kafka \
                       acknowledged every event of the request; any other answer means none should \
                       be assumed stored, and a retry with the same event ids is safe.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(
        WireEvent,
        IngestBody,
        NdjsonBody,
        Problem,
        EventError,
        ingest::Receipt,
        ingest::EventReceipt,
        ingest::ReceiptStatus,
        Health,
    )),
    modifiers(&API_KEY),
    tags(
        (name = "events", description = "Event ingestion"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
)]
pub struct ApiDoc;

/// Every route of the API (without the ingest route's request limit: the
/// document is the same either way).
pub fn operations() -> OpenApiRouter<AppState> {
    routes(routes!(ingest::ingest_events))
}

/// Every route, with `POST /events` serving at most `max_in_flight`
/// requests at once (`API_MAX_IN_FLIGHT_REQUESTS`): tower's concurrency
/// limit, with load shedding, so one more is answered at once with 503
/// `overloaded` (and `Retry-After`) before its body is read, rather than
/// queued behind the others while every answer slows down.
pub fn limited_operations(max_in_flight: usize) -> OpenApiRouter<AppState> {
    let shed = move |error: tower::BoxError| async move {
        let error = if error.is::<tower::load_shed::error::Overloaded>() {
            AppError::Overloaded {
                detail: format!(
                    "the API is already serving {max_in_flight} requests, its limit (API_MAX_IN_FLIGHT_REQUESTS)"
                ),
                retry_after: std::time::Duration::from_secs(1),
            }
        } else {
            AppError::Internal(anyhow::anyhow!("the request limit failed: {error}"))
        };
        error.into_response()
    };
    routes(
        routes!(ingest::ingest_events).layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(shed))
                .load_shed()
                .concurrency_limit(max_in_flight),
        ),
    )
}

fn routes(ingest: UtoipaMethodRouter<AppState>) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(ingest)
        .routes(routes!(eventpipe_service::http::health::get_health))
        .routes(routes!(health::get_ready))
        .routes(routes!(metrics::get_metrics))
}

/// The document, as served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    operations().into_openapi()
}

/// [`document`] as pretty JSON, exactly as committed under `openapi/`.
pub fn document_json() -> String {
    eventpipe_service::http::openapi::document_json(&document())
}
