//! From a consumed message to a row, or to the reason it cannot be one.
//! Pure, so the rules are unit-tested without Kafka or PostgreSQL.

use eventpipe_contract::{EventRecord, check_record, kafka};

use eventpipe_store::NewEvent;

/// What to do with one message.
#[derive(Debug)]
pub enum Verdict {
    /// Store it.
    Row(Box<NewEvent>),
    /// Send it to the DLQ: it can never be stored.
    Poison {
        /// Short reason, a metric label and a DLQ header.
        reason: &'static str,
        /// The full error.
        error: String,
    },
}

fn poison(reason: &'static str, error: impl Into<String>) -> Verdict {
    Verdict::Poison {
        reason,
        error: error.into(),
    }
}

/// Decodes a message value (normalized event JSON, wire format v1) read at
/// `partition`/`offset`, with the schema-version header if it had one.
pub fn decode(
    value: Option<&[u8]>,
    schema_version: Option<&[u8]>,
    partition: i32,
    offset: i64,
) -> Verdict {
    if let Some(version) = schema_version
        && version != kafka::SCHEMA_VERSION.as_bytes()
    {
        return poison(
            "unsupported_schema",
            format!(
                "schema version {:?} is not {}",
                String::from_utf8_lossy(version),
                kafka::SCHEMA_VERSION
            ),
        );
    }
    let Some(value) = value else {
        return poison("not_json", "message has no value");
    };
    let record: EventRecord<'_> = match serde_json::from_slice(value) {
        Ok(r) => r,
        Err(e) if e.is_syntax() || e.is_eof() => return poison("not_json", e.to_string()),
        Err(e) => return poison("invalid_event", e.to_string()),
    };
    if let Err(e) = check_record(&record) {
        return poison("invalid_event", format!("{}: {}", e.pointer, e.message));
    }
    let payload = record.payload.get().to_owned();
    let timestamp_raw = record.timestamp_raw.map(|raw| raw.get().to_owned());
    Verdict::Row(Box::new(NewEvent {
        event_id: record.event_id,
        user_id: record.user_id.into_owned(),
        event_type: record.event_type.into_owned(),
        source: record.source.into_owned(),
        event_ts: record.timestamp,
        timestamp_raw,
        received_at: record.received_at,
        payload,
        kafka_partition: partition,
        kafka_offset: offset,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id":"6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162","user_id":"u1","type":"login","source":"api","timestamp":"2026-11-23T12:00:00Z","timestamp_raw":1795441500000,"received_at":"2026-11-23T12:00:01.5Z","payload":{"success":true}}"#;

    fn reason(value: &[u8], schema: Option<&[u8]>) -> &'static str {
        match decode(Some(value), schema, 0, 0) {
            Verdict::Poison { reason, .. } => reason,
            Verdict::Row(_) => "row",
        }
    }

    #[test]
    fn a_good_record_becomes_a_row() {
        let Verdict::Row(row) = decode(Some(GOOD.as_bytes()), Some(b"1"), 3, 42) else {
            panic!("expected a row");
        };
        assert_eq!(row.user_id, "u1");
        assert_eq!(row.event_type, "login");
        assert_eq!(row.payload, r#"{"success":true}"#);
        assert_eq!(row.timestamp_raw.as_deref(), Some("1795441500000"));
        assert_eq!((row.kafka_partition, row.kafka_offset), (3, 42));
        assert_eq!(row.received_at.timestamp_millis() % 1000, 500);
    }

    #[test]
    fn poison_is_named() {
        assert_eq!(reason(b"not json at all", None), "not_json");
        assert_eq!(reason(b"{\"user_id\":", None), "not_json");
        assert_eq!(reason(b"{\"user_id\":\"u\"}", None), "invalid_event");
        assert_eq!(
            reason(GOOD.replace("login", "Bad Type").as_bytes(), None),
            "invalid_event"
        );
        assert_eq!(
            reason(GOOD.replace("{\"success\":true}", "[1]").as_bytes(), None),
            "invalid_event"
        );
        assert_eq!(reason(GOOD.as_bytes(), Some(b"2")), "unsupported_schema");
        assert!(matches!(
            decode(None, None, 0, 0),
            Verdict::Poison {
                reason: "not_json",
                ..
            }
        ));
        assert_eq!(reason(GOOD.as_bytes(), None), "row");
    }
}
