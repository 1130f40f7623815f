//! The normalized event as it travels on the `events` topic: the Kafka
//! message value the API produces and the worker consumes. Borrowing, so the
//! API serializes straight from the request body and the worker decodes
//! without copying payloads.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// One validated, normalized event (wire format v1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord<'a> {
    /// Idempotency key: the client's, or a UUIDv7 the API assigned.
    pub event_id: Uuid,
    /// Who the event is about; also the Kafka message key.
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    /// Event type, `^[a-z][a-z0-9_.-]{0,63}$`.
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    /// Where the event came from (`"api"` by default).
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    /// When the event happened, in UTC (the receive time when the client sent none).
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    /// The `timestamp` exactly as the client sent it, when it sent one.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub timestamp_raw: Option<&'a RawValue>,
    /// When the API received the request carrying the event.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub received_at: DateTime<Utc>,
    /// The event's payload object, byte for byte as the client sent it.
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

impl EventRecord<'_> {
    /// The record as the JSON bytes of a Kafka message value.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.payload.get().len());
        // Writing to a Vec cannot fail and every field serializes.
        let _ = serde_json::to_writer(&mut out, self);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rules, validate_event};

    #[test]
    fn round_trips_through_json_keeping_raw_values() {
        let body = r#"{"user_id":"u1","type":"login","timestamp":1700000000123,"payload":{"success":true, "n": 1.50}}"#;
        let raw: &RawValue = serde_json::from_str(body).unwrap();
        let now = DateTime::from_timestamp_millis(1_700_000_100_000).unwrap();
        let record = validate_event(raw, now, &Rules::default()).unwrap();
        let bytes = record.to_json();
        let back: EventRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.event_id, record.event_id);
        assert_eq!(back.user_id, "u1");
        assert_eq!(back.event_type, "login");
        assert_eq!(back.source, "api");
        assert_eq!(back.timestamp.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(back.timestamp_raw.unwrap().get(), "1700000000123");
        assert_eq!(back.received_at, now);
        assert_eq!(back.payload.get(), r#"{"success":true, "n": 1.50}"#);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["timestamp"], "2023-11-14T22:13:20.123Z");
    }
}
