//! Borrowing views of JSON values already known to be well-formed: the
//! fields of an object and the text of a string, without building a
//! `serde_json::Value` tree. Validation runs on every accepted event, so it
//! only allocates where JSON escapes force it to.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object in document order, values left unparsed.
pub(crate) struct Members<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

/// A JSON string, borrowed from the input unless it contains escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The members of `raw` if it is an object.
pub(crate) fn members(raw: &RawValue) -> Option<Members<'_>> {
    serde_json::from_str(raw.get()).ok()
}

/// The text of `raw` if it is a string.
pub(crate) fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Text>(raw.get()).ok().map(|t| t.0)
}

/// Names the JSON type of a well-formed value, for error messages.
pub(crate) fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// True for JSON `null`.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// The JSON pointer escape of one reference token (RFC 6901).
pub(crate) fn pointer_token(name: &str) -> Cow<'_, str> {
    if name.contains(['~', '/']) {
        Cow::Owned(name.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn members_borrow_plain_keys_and_keep_order() {
        let m = members(raw(r#"{"b": 1, "a\n": [2], "c": {"d": null}}"#)).unwrap();
        let keys: Vec<_> = m.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "a\n", "c"]);
        assert!(matches!(m.0[0].0, Cow::Borrowed(_)));
        assert_eq!(m.0[2].1.get(), r#"{"d": null}"#);
    }

    #[test]
    fn members_of_a_non_object_is_none() {
        for s in ["[]", "1", "\"x\"", "null", "true"] {
            assert!(members(raw(s)).is_none(), "{s}");
        }
    }

    #[test]
    fn text_unescapes_and_rejects_non_strings() {
        assert_eq!(text(raw(r#""a\"b""#)).unwrap(), "a\"b");
        assert!(text(raw("12")).is_none());
    }

    #[test]
    fn kinds_and_pointer_tokens() {
        assert_eq!(kind(raw("-1.5")), "a number");
        assert_eq!(kind(raw("false")), "a boolean");
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }
}
