//! Wire format v1: turns one event as a client sent it into the normalized
//! [`EventRecord`], or lists everything wrong with it. Every rule of the
//! contract lives here, so the API, the worker and the load generator agree
//! on what a valid event is.
//!
//! Choices where the contract is silent: `null` counts as absent for the
//! optional fields; a non-negative integer `user_id` is accepted and kept as
//! its decimal string (earlier systems sent numeric user ids); unknown
//! top-level fields are errors, so a typo such as `usr_id` is named instead of
//! silently dropped.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Duration, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;

pub use crate::field_error::FieldError;
use crate::object::{self, kind, pointer_token};
use crate::payload;
use crate::record::EventRecord;

/// Top-level fields of an event, in the order the docs list them.
pub const FIELDS: [&str; 6] = [
    "event_id",
    "user_id",
    "type",
    "source",
    "timestamp",
    "payload",
];
/// `source` when the client sends none.
pub const DEFAULT_SOURCE: &str = "api";
/// Longest `user_id`, in characters.
pub const USER_ID_MAX_CHARS: usize = 128;
const TYPE_MAX_CHARS: usize = 64;
/// Longest `source`, in characters.
pub const SOURCE_MAX_CHARS: usize = 64;
/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
pub(crate) const MAX_EPOCH_MILLIS: i64 = 253_402_300_799_999;

/// Tunable parts of validation.
#[derive(Debug, Clone)]
pub struct Rules {
    /// How far ahead of the receiving clock a `timestamp` may be.
    pub max_future: Duration,
    /// Reject event types outside [`crate::KNOWN_TYPES`].
    pub strict_types: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_future: Duration::minutes(5),
            strict_types: false,
        }
    }
}

static EMPTY_OBJECT: LazyLock<Box<RawValue>> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant that is valid JSON
    RawValue::from_string("{}".to_owned()).expect("{} is JSON")
});

/// The top-level members of an event, each left unparsed.
#[derive(Default)]
struct Members<'a> {
    event_id: Option<&'a RawValue>,
    user_id: Option<&'a RawValue>,
    event_type: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
}

/// Validates one event and normalizes it, or returns every error found.
///
/// `received_at` is when the request arrived: the default `timestamp` and
/// the clock future timestamps are judged against.
pub fn validate_event<'a>(
    raw: &'a RawValue,
    received_at: DateTime<Utc>,
    rules: &Rules,
) -> Result<EventRecord<'a>, Vec<FieldError>> {
    let Some(all) = object::members(raw) else {
        return Err(vec![FieldError::new(
            "",
            format!("an event must be a JSON object, got {}", kind(raw)),
        )]);
    };
    let mut errors = Vec::new();
    let mut m = Members::default();
    for (name, value) in all.0 {
        let slot = match name.as_ref() {
            "event_id" => &mut m.event_id,
            "user_id" => &mut m.user_id,
            "type" => &mut m.event_type,
            "source" => &mut m.source,
            "timestamp" => &mut m.timestamp,
            "payload" => &mut m.payload,
            other => {
                errors.push(FieldError::new(
                    format!("/{}", pointer_token(other)),
                    format!("unknown field; an event has only {}", FIELDS.join(", ")),
                ));
                continue;
            }
        };
        if slot.is_some() {
            errors.push(FieldError::new(format!("/{name}"), "field appears twice"));
        }
        *slot = (!object::is_null(value)).then_some(value);
    }

    let required = |v: Option<&'a RawValue>| v.ok_or_else(|| "is required".to_owned());
    let event_id = keep(
        &mut errors,
        "/event_id",
        m.event_id.map_or_else(|| Ok(Uuid::now_v7()), event_id),
    );
    let user_id = keep(
        &mut errors,
        "/user_id",
        required(m.user_id).and_then(user_id),
    );
    let event_type = keep(
        &mut errors,
        "/type",
        required(m.event_type).and_then(|v| event_type(v, rules)),
    );
    let source = keep(
        &mut errors,
        "/source",
        m.source.map_or(Ok(Cow::Borrowed(DEFAULT_SOURCE)), source),
    );
    let timestamp = keep(
        &mut errors,
        "/timestamp",
        m.timestamp
            .map_or(Ok(received_at), |v| timestamp(v, received_at, rules)),
    );
    let payload = match m.payload {
        None => &**EMPTY_OBJECT,
        Some(v) if v.get().contains("\\u0000") => {
            errors.push(FieldError::new(
                "/payload",
                "must not contain the NUL character (\\u0000): PostgreSQL cannot store it",
            ));
            v
        }
        Some(v) if v.get().starts_with('{') => v,
        Some(v) => {
            errors.push(FieldError::new(
                "/payload",
                format!("must be a JSON object, got {}", kind(v)),
            ));
            v
        }
    };
    if let Some(t) = &event_type {
        payload::check(t, payload, &mut errors);
    }

    match (event_id, user_id, event_type, source, timestamp) {
        (Some(event_id), Some(user_id), Some(event_type), Some(source), Some(timestamp))
            if errors.is_empty() =>
        {
            Ok(EventRecord {
                event_id,
                user_id,
                event_type,
                source,
                timestamp,
                timestamp_raw: m.timestamp,
                received_at,
                payload,
            })
        }
        _ => Err(errors),
    }
}

/// Checks a record read back from Kafka against the same rules the API
/// applied, so a message that did not come through the API (or was
/// corrupted on the way) is caught before it is stored.
pub fn check_record(record: &EventRecord<'_>) -> Result<(), FieldError> {
    if record.event_id.is_nil() {
        return Err(FieldError::new("/event_id", "must not be the nil UUID"));
    }
    check_text(&record.user_id, USER_ID_MAX_CHARS).map_err(|e| FieldError::new("/user_id", e))?;
    check_event_type(&record.event_type).map_err(|e| FieldError::new("/type", e))?;
    check_text(&record.source, SOURCE_MAX_CHARS).map_err(|e| FieldError::new("/source", e))?;
    let payload = record.payload.get();
    if !payload.starts_with('{') {
        return Err(FieldError::new("/payload", "must be a JSON object"));
    }
    if payload.contains("\\u0000") {
        return Err(FieldError::new("/payload", "must not contain \\u0000"));
    }
    Ok(())
}

/// The value of a field check, or `None` with its error recorded under `pointer`.
fn keep<T>(errors: &mut Vec<FieldError>, pointer: &str, checked: Result<T, String>) -> Option<T> {
    checked
        .map_err(|e| errors.push(FieldError::new(pointer, e)))
        .ok()
}

fn event_id(v: &RawValue) -> Result<Uuid, String> {
    let text = object::text(v).ok_or_else(|| format!("must be a UUID string (got {})", kind(v)))?;
    // Only the hyphenated form: the one the receipt and the read API give back.
    let hyphenated = text.len() == 36;
    match Uuid::parse_str(&text)
        .map_err(|_| ())
        .and_then(|id| if hyphenated { Ok(id) } else { Err(()) })
    {
        Ok(id) if id.is_nil() => Err("must not be the nil UUID".to_owned()),
        Ok(id) => Ok(id),
        Err(_) => Err(format!(
            "must be a UUID such as \"0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70\", got {text:?}"
        )),
    }
}

fn user_id(v: &RawValue) -> Result<Cow<'_, str>, String> {
    let raw = v.get();
    if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return whole_number(raw).map(|digits| {
            if digits == raw {
                Cow::Borrowed(raw)
            } else {
                Cow::Owned(digits)
            }
        });
    }
    let text = object::text(v).ok_or_else(|| format!("must be a string (got {})", kind(v)))?;
    check_text(&text, USER_ID_MAX_CHARS)?;
    Ok(text)
}

/// A JSON number that is a whole number from 0 to `u64::MAX`, as its
/// decimal digits: by JSON Schema's rules `12.0` and `1.2e1` are the
/// integer 12 as much as `12` is, so they are taken as "12".
fn whole_number(raw: &str) -> Result<String, String> {
    let not_whole = || {
        format!(
            "must be a string or a whole number from 0 to {} (got {raw})",
            u64::MAX
        )
    };
    let (negative, unsigned) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().map_err(|_| not_whole())?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok("0".to_owned());
    }
    if negative {
        return Err(not_whole());
    }
    // The value is digits x 10^scale.
    let scale = exponent - fraction.len() as i64;
    let value = if scale >= 0 {
        if digits.len() as i64 + scale > 20 {
            return Err(too_big());
        }
        format!("{digits}{}", "0".repeat(scale as usize))
    } else {
        // Whole when the digits the scale puts after the point are zeros
        // (the first digit is not 0, so all of them never are).
        let cut = digits.len().saturating_sub(scale.unsigned_abs() as usize);
        let (kept, dropped) = digits.split_at(cut);
        if dropped.bytes().any(|b| b != b'0') {
            return Err(not_whole());
        }
        kept.to_owned()
    };
    value.parse::<u64>().map_err(|_| too_big())?;
    Ok(value)
}

fn too_big() -> String {
    format!(
        "a numeric user_id must fit in 64 bits (at most {}); send larger ids as strings",
        u64::MAX
    )
}

fn event_type<'a>(v: &'a RawValue, rules: &Rules) -> Result<Cow<'a, str>, String> {
    let text = object::text(v).ok_or_else(|| format!("must be a string (got {})", kind(v)))?;
    check_event_type(&text)?;
    if rules.strict_types && !payload::is_known(&text) {
        return Err(format!(
            "unknown event type {text:?}; strict mode accepts only {}",
            payload::KNOWN_TYPES.join(", ")
        ));
    }
    Ok(text)
}

/// Whether `text` is a well-formed event type: `^[a-z][a-z0-9_.-]{0,63}$`,
/// spelled out.
pub fn check_event_type(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let well_formed = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.len() <= TYPE_MAX_CHARS
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(b));
    if !well_formed {
        return Err(format!(
            "must match ^[a-z][a-z0-9_.-]{{0,63}}$ (lower-case letter first, at most {TYPE_MAX_CHARS} characters), got {text:?}"
        ));
    }
    Ok(())
}

fn source(v: &RawValue) -> Result<Cow<'_, str>, String> {
    let text = object::text(v).ok_or_else(|| format!("must be a string (got {})", kind(v)))?;
    check_text(&text, SOURCE_MAX_CHARS)?;
    Ok(text)
}

/// Whether `text` is 1..=max characters with no control characters (the
/// rule for `user_id` and `source`).
pub fn check_text(text: &str, max: usize) -> Result<(), String> {
    let chars = text.chars().count();
    if chars == 0 {
        return Err("must not be empty".to_owned());
    }
    if chars > max {
        return Err(format!("must be at most {max} characters, got {chars}"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

fn timestamp(
    v: &RawValue,
    received_at: DateTime<Utc>,
    rules: &Rules,
) -> Result<DateTime<Utc>, String> {
    const EXPECTED: &str = "must be an RFC 3339 date-time such as \"2026-11-23T13:45:00Z\" or integer epoch milliseconds";
    let at = match object::text(v) {
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{EXPECTED}, got {text:?} ({e})"))?,
        None => {
            let millis = v
                .get()
                .parse::<i64>()
                .map_err(|_| format!("{EXPECTED}, got {}", v.get()))?;
            if !(0..=MAX_EPOCH_MILLIS).contains(&millis) {
                return Err(format!(
                    "epoch milliseconds must be from 0 to {MAX_EPOCH_MILLIS}, got {millis}"
                ));
            }
            DateTime::from_timestamp_millis(millis)
                .ok_or_else(|| format!("{EXPECTED}, got {millis}"))?
        }
    };
    let ahead = at - received_at;
    if ahead > rules.max_future {
        return Err(format!(
            "is {} s in the future; at most {} s ahead of the server clock is accepted",
            ahead.num_seconds(),
            rules.max_future.num_seconds()
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests;
