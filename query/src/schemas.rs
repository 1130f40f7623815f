//! OpenAPI schemas the derive cannot write: a stored event's
//! `timestamp_raw`, which is text or a number. (The query parameters'
//! schemas are their types', in [`crate::params`].)

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};

/// A stored event's `timestamp_raw`: the client's `timestamp` as sent, an
/// RFC 3339 string or epoch milliseconds.
pub fn raw_timestamp() -> Schema {
    AnyOfBuilder::new()
        .description(Some(
            "The client's `timestamp` exactly as sent (an RFC 3339 string or epoch milliseconds); absent when the client sent none.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Integer))
        .examples([serde_json::json!("2026-11-24T13:00:00.123+01:00")])
        .into()
}
