//! An event's payload as the rules read it: one field at a time. A new
//! event's payload is split into its top-level fields without building a
//! JSON tree (each value stays raw text until a rule asks for it); a stored
//! event's payload, replayed from PostgreSQL, arrives already parsed.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A payload's top-level fields.
#[derive(Debug)]
pub enum Payload<'a> {
    /// Fields of a payload still in its JSON text.
    Raw(Vec<(&'a str, &'a RawValue)>),
    /// A parsed payload.
    Parsed(&'a Value),
    /// No payload the rules can read.
    Empty,
}

impl<'a> Payload<'a> {
    /// Splits `text` (a JSON object) into its fields; `None` when it is
    /// not an object or a key holds escapes (then parse it whole and use
    /// [`Payload::Parsed`]).
    pub fn split(text: &'a str) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(Fields).ok().map(Payload::Raw)
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &str) -> Option<Value> {
        match self {
            Payload::Raw(fields) => fields
                .iter()
                .find(|(k, _)| *k == field)
                .and_then(|(_, raw)| serde_json::from_str(raw.get()).ok()),
            Payload::Parsed(value) => value.get(field).cloned(),
            Payload::Empty => None,
        }
    }

    /// The value of `field` as a number, if it is one.
    pub fn number(&self, field: &str) -> Option<f64> {
        match self {
            Payload::Raw(fields) => fields
                .iter()
                .find(|(k, _)| *k == field)
                .and_then(|(_, raw)| raw.get().parse::<f64>().ok()),
            Payload::Parsed(value) => value.get(field).and_then(Value::as_f64),
            Payload::Empty => None,
        }
    }
}

struct Fields;

impl<'de> Visitor<'de> for Fields {
    type Value = Vec<(&'de str, &'de RawValue)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
            fields.push(entry);
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_read_the_same_raw_or_parsed() {
        let text =
            r#"{"success": false, "location": "Berlin, DE", "amount": 1500.5, "n": {"a": 1}}"#;
        let parsed: Value = serde_json::from_str(text).unwrap();
        for payload in [Payload::split(text).unwrap(), Payload::Parsed(&parsed)] {
            assert_eq!(payload.get("success"), Some(json!(false)));
            assert_eq!(payload.get("location"), Some(json!("Berlin, DE")));
            assert_eq!(payload.number("amount"), Some(1500.5));
            assert_eq!(payload.number("location"), None);
            assert_eq!(payload.get("n"), Some(json!({"a": 1})));
            assert_eq!(payload.get("missing"), None);
        }
        assert!(Payload::split("[1, 2]").is_none());
        assert!(
            Payload::split(r#"{"a\u0062": 1}"#).is_none(),
            "escaped keys are not borrowed"
        );
    }
}
