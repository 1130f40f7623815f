//! The OpenAPI schemas of the read side's query parameters: exactly what
//! their parsers ([`crate::analytics::params`], [`crate::pages`]) accept,
//! so a client generated from the document, or a fuzzer, never sends a
//! value the server refuses for its own sake. An empty value is allowed
//! wherever the server reads it as "absent". What a schema cannot say
//! (`from` before `to`, `interval` or `interval_ms` but not both, the
//! bucket cap) the operations' descriptions say.

use eventpipe_contract::schema::{EVENT_TYPE, NO_CONTROL};
use eventpipe_contract::validate::{SOURCE_MAX_CHARS, USER_ID_MAX_CHARS};
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

use crate::analytics::INTERVALS;
use crate::limits::{LATEST_EPOCH_MS, MAX_HOURS, MAX_LIMIT, MAX_LIST};

fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The empty value: the parameter's default.
fn empty() -> Schema {
    text().max_length(Some(0)).into()
}

/// `schema`, or empty for the default.
fn or_empty(schema: impl Into<Schema>) -> Schema {
    AnyOfBuilder::new().item(schema.into()).item(empty()).into()
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
fn instant() -> Schema {
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
fn limit() -> Schema {
    integer(1, i64::from(MAX_LIMIT))
}

/// `hours`: 1 to 8760.
fn hours() -> Schema {
    integer(1, i64::from(MAX_HOURS))
}

/// `interval_ms`: a positive number of milliseconds.
fn interval_ms() -> Schema {
    integer(1, i64::MAX)
}

/// `interval`: one of the bucket widths.
fn interval() -> Schema {
    one_of(&INTERVALS.map(|i| i.name))
}

/// `group_by`/`by` of event counts.
fn event_key() -> Schema {
    one_of(&["type", "source"])
}

/// `group_by` of anomaly counts.
fn anomaly_keys() -> Schema {
    one_of(&["rule", "severity", "rule,severity", "severity,rule"])
}

/// `group_by` of an anomaly time series.
fn anomaly_key() -> Schema {
    one_of(&["rule", "severity"])
}

/// `type`: event types, as the contract writes them.
fn event_types() -> Schema {
    list(text().pattern(Some(format!("^({EVENT_TYPE})?$"))))
}

/// `source`: sources.
fn sources() -> Schema {
    list(list_text(SOURCE_MAX_CHARS))
}

/// `rule`: rule names.
fn rules() -> Schema {
    list(list_text(128))
}

/// `severity`: low, medium, high.
fn severities() -> Schema {
    list(text().enum_values(Some(["low", "medium", "high", ""])))
}

/// `user_id`: up to 128 characters, no control character; empty for any user.
fn user_id() -> Schema {
    text()
        .pattern(Some(format!("^[^{NO_CONTROL}]{{0,{USER_ID_MAX_CHARS}}}$")))
        .into()
}

/// `cursor`: a page's `next_cursor`.
fn cursor() -> Schema {
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

/// The schema of the query parameter `name` of the operation at `path`,
/// if it is one of the read side's.
fn of_parameter(path: &str, name: &str) -> Option<Schema> {
    Some(match name {
        "from" | "to" => instant(),
        "limit" => limit(),
        "hours" => hours(),
        "interval" => interval(),
        "interval_ms" => interval_ms(),
        "by" => event_key(),
        "group_by" if path.ends_with("/counts/timeseries") => event_key(),
        "group_by" if path.ends_with("/anomalies/counts") => anomaly_keys(),
        "group_by" if path.ends_with("/anomalies/timeseries") => anomaly_key(),
        "type" => event_types(),
        "source" => sources(),
        "rule" => rules(),
        "severity" => severities(),
        "user_id" => user_id(),
        "cursor" => cursor(),
        _ => return None,
    })
}

/// Gives every query parameter of `document`'s read-side operations its
/// exact schema (by name; the parameter structs declare them as text,
/// which is how they are parsed), and marks the lists as one
/// comma-separated value (`style: form, explode: false`). Done on the
/// document rather than per field because utoipa's `schema_with` on a
/// parameter drops its description and example.
pub fn refine(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::path::{ParameterIn, ParameterStyle};
    // The read side's operations are all GETs.
    for (path, item) in document.paths.paths.iter_mut() {
        let Some(operation) = item.get.as_mut() else {
            continue;
        };
        for parameter in operation.parameters.iter_mut().flatten() {
            if parameter.parameter_in != ParameterIn::Query {
                continue;
            }
            let Some(schema) = of_parameter(path, &parameter.name) else {
                continue;
            };
            if matches!(schema, Schema::Array(_)) {
                parameter.style = Some(ParameterStyle::Form);
                parameter.explode = Some(false);
            }
            parameter.schema = Some(RefOr::T(schema));
        }
    }
}
