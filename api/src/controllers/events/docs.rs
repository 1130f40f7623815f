//! What `POST /events` documents beyond its types: the request body's
//! schema (one event or a batch) and the examples Swagger UI shows.

use eventpipe_contract::schema::WireBatch;
use serde_json::{Value, json};
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The documented batch limit: `API_MAX_BATCH_EVENTS`' default.
const DOCUMENTED_MAX_BATCH: usize = 1000;

/// The body of `POST /events` as JSON: one event or a batch.
pub struct IngestBody;

impl PartialSchema for IngestBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            OneOfBuilder::new()
                .description(Some(
                    "One event, or a batch: an array of 1 to API_MAX_BATCH_EVENTS (default 1000) events.",
                ))
                .item(Ref::from_schema_name("WireEvent"))
                .item(WireBatch::schema(DOCUMENTED_MAX_BATCH))
                .into(),
        )
    }
}

impl ToSchema for IngestBody {}

/// The body of `POST /events` as NDJSON: one event per line.
pub struct NdjsonBody;

impl PartialSchema for NdjsonBody {
    fn schema() -> RefOr<Schema> {
        WireBatch::schema(DOCUMENTED_MAX_BATCH)
            .description(Some(
                "NDJSON: each line one event (a WireEvent object), 1 to API_MAX_BATCH_EVENTS (default 1000) lines; \
                 blank lines are skipped. Described as the array of its lines.",
            ))
            .into()
    }
}

impl ToSchema for NdjsonBody {}

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
