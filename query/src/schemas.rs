//! The OpenAPI schemas of the read side's query parameters: exactly what
//! their parsers ([`crate::analytics::params`], [`crate::pages`]) accept,
//! so a client generated from the document, or a fuzzer, never sends a
//! value the server refuses for its own sake. An empty value is allowed
//! wherever the server reads it as "absent". What a schema cannot say
//! (`from` before `to`, `interval` or `interval_ms` but not both, the
//! bucket cap) the operations' descriptions say.

use eventpipe_contract::validate::{SOURCE_MAX_CHARS, USER_ID_MAX_CHARS};
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

use crate::analytics::INTERVALS;
use crate::analytics::params::{LATEST_EPOCH_MS, MAX_LIMIT, MAX_LIST};

/// Characters a free-text value must not hold: control characters (what
/// Rust's `char::is_control` refuses).
const NO_CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The empty value: the parameter's default.
fn empty() -> Schema {
    text().max_length(Some(0)).into()
}

/// `schema`, or empty for the default.
fn or_empty(schema: impl Into<Schema>) -> Schema {
    AnyOfBuilder::new()
        .item(schema.into())
        .item(empty())
        .into()
}

/// An integer in `min..=max`, or empty.
fn integer(min: i64, max: i64) -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(min))
            .maximum(Some(max)),
    )
}

/// One of `values`, or empty.
fn one_of(values: &[&str]) -> Schema {
    text()
        .enum_values(Some(values.iter().copied().chain([""])))
        .into()
}

/// A comma-separated list (`style: form, explode: false`) of `item`s
/// (each may be empty: empty values are skipped); empty is no filter.
fn list(item: impl Into<Schema>) -> Schema {
    ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(item.into()))
        .max_items(Some(MAX_LIST))
        .into()
}

/// Text of up to `max` characters, none a control character nor a comma.
fn list_text(max: usize) -> Schema {
    text()
        .pattern(Some(format!("^[^,{NO_CONTROL}]{{0,{max}}}$")))
        .into()
}

/// `from`, `to`: epoch milliseconds (1970 to 9999) or RFC 3339.
pub fn instant() -> Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .maximum(Some(LATEST_EPOCH_MS)),
        )
        .item(text().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(empty())
        .into()
}

/// `limit`: 1 to 1000.
pub fn limit() -> Schema {
    integer(1, i64::from(MAX_LIMIT))
}

/// `hours`: 1 to 8760.
pub fn hours() -> Schema {
    integer(1, i64::from(crate::controllers::window::MAX_HOURS))
}

/// `interval_ms`: a positive number of milliseconds.
pub fn interval_ms() -> Schema {
    integer(1, i64::MAX)
}

/// `interval`: one of the bucket widths.
pub fn interval() -> Schema {
    one_of(&INTERVALS.map(|i| i.name))
}

/// `group_by`/`by` of event counts.
pub fn event_key() -> Schema {
    one_of(&["type", "source"])
}

/// `group_by` of anomaly counts.
pub fn anomaly_keys() -> Schema {
    one_of(&["rule", "severity", "rule,severity", "severity,rule"])
}

/// `group_by` of an anomaly time series.
pub fn anomaly_key() -> Schema {
    one_of(&["rule", "severity"])
}

/// `type`: event types, as the contract writes them.
pub fn event_types() -> Schema {
    list(text().pattern(Some("^([a-z][a-z0-9_.-]{0,63})?$")))
}

/// `source`: sources.
pub fn sources() -> Schema {
    list(list_text(SOURCE_MAX_CHARS))
}

/// `rule`: rule names.
pub fn rules() -> Schema {
    list(list_text(128))
}

/// `severity`: low, medium, high.
pub fn severities() -> Schema {
    list(text().enum_values(Some(["low", "medium", "high", ""])))
}

/// `user_id`: up to 128 characters, no control character; empty for any user.
pub fn user_id() -> Schema {
    text()
        .pattern(Some(format!("^[^{NO_CONTROL}]{{0,{USER_ID_MAX_CHARS}}}$")))
        .into()
}

/// `cursor`: a page's `next_cursor`.
pub fn cursor() -> Schema {
    text().pattern(Some("^(v[0-9a-f]{48})?$")).into()
}

/// A stored event's `timestamp_raw`: the client's `timestamp` as sent, an
/// RFC 3339 string or epoch milliseconds.
pub fn raw_timestamp() -> Schema {
    AnyOfBuilder::new()
        .description(Some(
            "The client's `timestamp` exactly as sent (an RFC 3339 string or epoch milliseconds); absent when the client sent none.",
        ))
        .item(text())
        .item(ObjectBuilder::new().schema_type(Type::Integer))
        .examples([serde_json::json!("2026-11-24T13:00:00.123+01:00")])
        .into()
}

/// Marks every array-typed query parameter of `document` as one
/// comma-separated value (`style: form, explode: false`), as the list
/// parsers read them. (utoipa drops `style` and `explode` from a parameter
/// whose schema comes from `schema_with`, so they are set here.)
pub fn comma_separated_lists(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::path::{ParameterIn, ParameterStyle};
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.parameter_in == ParameterIn::Query
                    && matches!(parameter.schema, Some(RefOr::T(Schema::Array(_))))
                {
                    parameter.style = Some(ParameterStyle::Form);
                    parameter.explode = Some(false);
                }
            }
        }
    }
}
