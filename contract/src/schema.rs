//! OpenAPI schemas of the wire format, for documentation: requests are
//! validated by [`crate::validate_event`], and these schemas say exactly
//! what it accepts, so a client (or a fuzzer) generated from the document
//! sends nothing it refuses. One alternative per known event type carries
//! that type's payload rules; a last one covers every other type. What a
//! schema cannot say is in the descriptions: a `timestamp` at most
//! `EVENT_MAX_FUTURE_SECS` ahead of the server clock, and no `\u0000`
//! anywhere in the payload (PostgreSQL cannot store it).

use serde_json::json;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, schema::SchemaType};
use utoipa::{PartialSchema, ToSchema};

use crate::currency::CODES;
use crate::payload::{FIELDS_BY_TYPE, HEART_RATE_RANGE, KNOWN_TYPES, Rule};
use crate::validate::{MAX_EPOCH_MILLIS, SOURCE_MAX_CHARS, USER_ID_MAX_CHARS};

/// Characters free text must not hold, as a regex class body: control
/// characters (what Rust's `char::is_control` refuses).
pub const NO_CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// An event type, as a regex without anchors (what
/// `validate::check_event_type` spells out).
pub const EVENT_TYPE: &str = "[a-z][a-z0-9_.-]{0,63}";

/// An event as clients send it (wire format v1); see [`WireEvent::schema`].
pub struct WireEvent;

/// A batch of events, as a JSON array or as NDJSON lines.
pub struct WireBatch;

fn nullable(types: Type) -> SchemaType {
    SchemaType::from_iter([types, Type::Null])
}

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .description(Some(description))
}

/// A payload field's schema, as `payload::check_value` judges `rule`.
fn field(rule: Rule) -> Schema {
    let of = |kind: Type| ObjectBuilder::new().schema_type(nullable(kind));
    match rule {
        Rule::Bool => of(Type::Boolean).into(),
        Rule::Text => of(Type::String).into(),
        Rule::IpAddress => OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))),
            )
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .into(),
        Rule::Currency => of(Type::String)
            .enum_values(Some(CODES.iter().map(|c| json!(c)).chain([json!(null)])))
            .into(),
        Rule::NonNegative => of(Type::Number).minimum(Some(0)).into(),
        Rule::StatusCode => of(Type::Integer)
            .description(Some(
                "An HTTP status, written without a fraction or exponent.",
            ))
            .minimum(Some(100))
            .maximum(Some(599))
            .into(),
        Rule::HttpMethod => of(Type::String).pattern(Some("^[A-Z]{1,16}$")).into(),
        Rule::HeartRate => of(Type::Number)
            .minimum(Some(HEART_RATE_RANGE.0))
            .maximum(Some(HEART_RATE_RANGE.1))
            .into(),
    }
}

/// The event object with `type` and `payload` as given.
fn event(event_type: Schema, payload: Schema) -> Schema {
    let no_nil = "(?!00000000-0000-0000-0000-000000000000$)";
    let uuid = format!(
        "^{no_nil}[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$"
    );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event_id",
            text("Idempotency key, a hyphenated UUID other than the nil one; absent, the API assigns a UUIDv7. Send your own to make retries safe.")
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                .pattern(Some(uuid)),
        )
        .property(
            "user_id",
            OneOfBuilder::new()
                .description(Some(
                    "Who the event is about: 1..=128 characters, no control characters, or a whole number from 0 to 18446744073709551615, which may be written with a zero fraction or an exponent as JSON Schema's integers may (`12`, `12.0` and `1.2e1` are all taken as the string `12`). Also the Kafka key, so one user's events stay in order.",
                ))
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(format!("^[^{NO_CONTROL}]{{1,{USER_ID_MAX_CHARS}}}$"))),
                )
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .maximum(Some(u64::MAX)),
                ),
        )
        .property("type", event_type)
        .property(
            "source",
            text("Where the event came from: 1..=64 characters, no control characters; default `\"api\"`.")
                .pattern(Some(format!("^[^{NO_CONTROL}]{{1,{SOURCE_MAX_CHARS}}}$"))),
        )
        .property(
            "timestamp",
            OneOfBuilder::new()
                .description(Some(
                    "When it happened: an RFC 3339 date-time or epoch milliseconds (0 to 9999-12-31, an integer written without a fraction or exponent); default the time the API received it. At most EVENT_MAX_FUTURE_SECS (300) ahead of the server clock. The raw value is kept.",
                ))
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                        .examples([json!("2026-11-23T13:45:00Z")]),
                )
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .maximum(Some(MAX_EPOCH_MILLIS)),
                )
                .item(ObjectBuilder::new().schema_type(Type::Null)),
        )
        .property("payload", payload)
        .required("user_id")
        .required("type")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

fn payload(fields: &[(&str, Rule)]) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(nullable(Type::Object))
        .description(Some(
            "Event data, a JSON object (default `{}`) with no `\\u0000` anywhere. Fields other than the type's known ones pass through unchecked.",
        ));
    for (name, rule) in fields {
        object = object.property(*name, field(*rule));
    }
    object.into()
}

impl PartialSchema for WireEvent {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "An event (wire format v1): one alternative per event type whose payload fields are checked, and one for every other type. Fields other than these are rejected; `null` counts as absent for the optional ones.",
        ));
        for (name, fields) in FIELDS_BY_TYPE {
            one_of = one_of.item(event(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([name]))
                    .into(),
                payload(fields),
            ));
        }
        let others = format!("^(?!({})$){EVENT_TYPE}$", KNOWN_TYPES.join("|"));
        one_of = one_of.item(event(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "Any other event type: a lower-case letter, then up to 63 of a-z, 0-9, `_`, `.`, `-`.",
                ))
                .pattern(Some(others))
                .into(),
            payload(&[]),
        ));
        one_of = one_of.examples([json!({
            "event_id": "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70",
            "user_id": "user-42",
            "type": "purchase",
            "source": "web",
            "timestamp": "2026-11-23T13:45:00Z",
            "payload": {"amount": 1500.0, "currency": "USD"}
        })]);
        RefOr::T(one_of.into())
    }
}

impl ToSchema for WireEvent {}

impl WireBatch {
    /// A batch of 1 to `max` events (a builder, for a description).
    pub fn schema(max: usize) -> ArrayBuilder {
        ArrayBuilder::new()
            .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "WireEvent",
            )))
            .min_items(Some(1))
            .max_items(Some(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::FIELDS;

    #[test]
    fn documented_fields_are_the_accepted_fields() {
        let RefOr::T(Schema::OneOf(one_of)) = WireEvent::schema() else {
            panic!("WireEvent is a oneOf");
        };
        assert_eq!(one_of.items.len(), KNOWN_TYPES.len() + 1);
        for item in &one_of.items {
            let RefOr::T(Schema::Object(object)) = item else {
                panic!("each alternative is an object");
            };
            let mut documented: Vec<&str> = object.properties.keys().map(String::as_str).collect();
            documented.sort_unstable();
            let mut accepted = FIELDS.to_vec();
            accepted.sort_unstable();
            assert_eq!(documented, accepted);
            assert_eq!(object.required, vec!["user_id", "type"]);
        }
        let types: Vec<&str> = FIELDS_BY_TYPE.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, KNOWN_TYPES);
    }
}
