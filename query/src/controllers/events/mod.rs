//! `/api/v1/events`: stored events, a page at a time
//! ([`list::list_events`]) or one by id with the anomalies it raised
//! ([`get::get_event`]).

pub mod get;
pub mod list;

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::controllers::analytics::time;
use crate::db::EventRow;

/// One event as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredEvent {
    /// Its id (the client's, or the one the API assigned).
    pub event_id: uuid::Uuid,
    /// Whose.
    #[schema(example = "user-42")]
    pub user_id: String,
    /// Its type.
    #[serde(rename = "type")]
    #[schema(example = "login")]
    pub event_type: String,
    /// Where it came from.
    #[schema(example = "web")]
    pub source: String,
    /// Its time (the client's `timestamp`, or when the API received it),
    /// RFC 3339 UTC.
    #[schema(example = "2026-11-24T12:00:00.123Z")]
    pub timestamp: String,
    /// The client's `timestamp` exactly as sent (a string or epoch
    /// milliseconds); absent when the client sent none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schemas::raw_timestamp)]
    pub timestamp_raw: Option<Box<RawValue>>,
    /// When the API received it.
    pub received_at: String,
    /// When its row was committed.
    pub stored_at: String,
    /// The Kafka partition it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The payload (PostgreSQL `jsonb`: the values as sent, keys possibly
    /// reordered).
    #[schema(value_type = Object, example = json!({"success": false, "location": "DE"}))]
    pub payload: Box<RawValue>,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        // Text PostgreSQL produced from jsonb is JSON; `null` (the
        // default) stands in should that ever not hold.
        let json = |text: String| RawValue::from_string(text).unwrap_or_default();
        StoredEvent {
            event_id: row.event_id,
            user_id: row.user_id,
            event_type: row.event_type,
            source: row.source,
            timestamp: time(&row.event_ts),
            timestamp_raw: row.timestamp_raw.map(json),
            received_at: time(&row.received_at),
            stored_at: time(&row.stored_at),
            partition: row.kafka_partition,
            offset: row.kafka_offset,
            payload: json(row.payload),
        }
    }
}
