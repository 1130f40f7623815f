//! The API's OpenAPI document: every route, schema, status code and example.
//! `openapi/api.json` in the repository is this document; a test fails when
//! they differ, and `cargo run -p eventpipe-api -- openapi > openapi/api.json`
//! regenerates it.

use eventpipe_contract::schema::{WireEvent, WireTimestamp};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::controllers;
use crate::error::{EventError, Problem};

/// The body of `POST /events` as JSON: one event or a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IngestBody {
    /// A single event.
    One(WireEvent),
    /// A batch of events (at most 1000 by default).
    Batch(Vec<WireEvent>),
}

struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key, when the server has keys configured (API_KEY_SHA256 or API_KEYS_FILE).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

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
    paths(
        controllers::events::ingest::ingest_events,
        controllers::health::get_health,
        controllers::health::get_ready,
        controllers::metrics::get_metrics,
    ),
    components(schemas(
        WireEvent,
        WireTimestamp,
        IngestBody,
        Problem,
        EventError,
        controllers::events::ingest::Receipt,
        controllers::events::ingest::EventReceipt,
        controllers::events::ingest::ReceiptStatus,
        controllers::health::Health,
    )),
    modifiers(&BearerKeys),
    tags(
        (name = "events", description = "Event ingestion"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
)]
pub struct ApiDoc;

/// The document as pretty JSON, exactly as committed under `openapi/`.
pub fn document_json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

pub(crate) fn example_single() -> Value {
    json!({
        "event_id": "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70",
        "user_id": "user-42",
        "type": "login",
        "timestamp": "2026-11-23T13:45:00Z",
        "payload": {"success": false, "location": "DE", "ip_address": "203.0.113.7", "login_method": "password"}
    })
}

pub(crate) fn example_batch() -> Value {
    json!([
        {"user_id": "user-42", "type": "purchase", "source": "web", "payload": {"amount": 1500.0, "currency": "USD"}},
        {"user_id": "user-7", "type": "heartbeat", "timestamp": 1795441500000_i64, "payload": {"heart_rate": 72}}
    ])
}

pub(crate) fn example_ndjson() -> Value {
    Value::String(
        "{\"user_id\":\"user-42\",\"type\":\"click\",\"payload\":{\"element\":\"buy\"}}\n\
         {\"user_id\":\"user-7\",\"type\":\"api_call\",\"payload\":{\"status_code\":503}}\n"
            .to_owned(),
    )
}

pub(crate) fn example_receipt() -> Value {
    json!({
        "accepted": 1,
        "results": [{"index": 0, "event_id": "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70", "status": "accepted", "partition": 3, "offset": 1042}]
    })
}

pub(crate) fn example_dry_run() -> Value {
    json!({
        "accepted": 0,
        "dry_run": true,
        "results": [{"index": 0, "event_id": "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70", "status": "valid"}]
    })
}

pub(crate) fn example_problem(status: u16) -> Value {
    let (slug, title, detail) = match status {
        400 => (
            "malformed-request",
            "Malformed request",
            "malformed JSON: expected `,` or `}` at line 1 column 31",
        ),
        401 => (
            "unauthorized",
            "Unauthorized",
            "missing API key: send `Authorization: Bearer <key>`",
        ),
        413 => (
            "too-large",
            "Request too large",
            "the request holds 1500 events; at most 1000 are accepted per request",
        ),
        415 => (
            "unsupported-media-type",
            "Unsupported media type",
            "Content-Type \"text/plain\" is not supported; send Content-Type: application/json (an event or an array of events) or application/x-ndjson (one event per line)",
        ),
        422 => (
            "invalid-events",
            "Invalid events",
            "2 event(s) invalid (2 error(s)); nothing was accepted",
        ),
        429 => (
            "rate-limited",
            "Rate limit exceeded",
            "this API key's event rate is exceeded; retry after 1 s",
        ),
        _ => (
            "unavailable",
            "Service unavailable",
            "Kafka did not acknowledge 1 of 1 event(s) within 5000 ms; retrying with the same event ids is safe",
        ),
    };
    let mut problem = json!({
        "type": format!("urn:eventpipe:problem:{slug}"),
        "title": title,
        "status": status,
        "detail": detail,
    });
    if status == 422 {
        problem["errors"] = json!([
            {"index": 0, "pointer": "/user_id", "message": "is required"},
            {"index": 1, "pointer": "/payload/amount", "message": "must be a number >= 0, got -5"}
        ]);
    }
    problem
}
