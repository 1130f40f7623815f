//! OpenAPI schemas of the wire format, for documentation only: requests are
//! validated by [`crate::validate_event`], and a test keeps these field
//! lists equal to the ones it accepts.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// When the event happened.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum WireTimestamp {
    /// An RFC 3339 date-time with an offset.
    #[schema(example = "2026-11-23T13:45:00Z")]
    Rfc3339(String),
    /// Milliseconds since the Unix epoch.
    #[schema(example = 1795441500000_i64)]
    EpochMillis(i64),
}

/// An event as clients send it (wire format v1). Fields other than these
/// are rejected; `null` counts as absent for the optional ones.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "event_id": "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70",
    "user_id": "user-42",
    "type": "purchase",
    "source": "web",
    "timestamp": "2026-11-23T13:45:00Z",
    "payload": {"amount": 1500.0, "currency": "USD"}
}))]
pub struct WireEvent {
    /// Idempotency key; absent, the API assigns a UUIDv7. Send your own to
    /// make retries safe.
    pub event_id: Option<Uuid>,
    /// Who the event is about: 1..=128 characters, no control characters
    /// (a non-negative integer is taken as its decimal string). Also the
    /// Kafka key, so one user's events stay in order.
    #[schema(min_length = 1, max_length = 128)]
    pub user_id: String,
    /// Event type. `login`, `purchase`, `api_call`, `heartbeat`, `click`
    /// and `file_access` get their payload fields checked.
    #[serde(rename = "type")]
    #[schema(pattern = "^[a-z][a-z0-9_.-]{0,63}$")]
    pub event_type: String,
    /// Where the event came from; default `"api"`.
    #[schema(min_length = 1, max_length = 64)]
    pub source: Option<String>,
    /// When it happened; default the time the API received it. At most 5
    /// minutes (configurable) in the future. The raw value is kept.
    pub timestamp: Option<WireTimestamp>,
    /// Event data, a JSON object; default `{}`. Known fields by type:
    /// login `success` (bool), `location`, `ip_address` (IP), `login_method`;
    /// purchase `amount` (number >= 0), `currency` (ISO 4217), `product_id`,
    /// `payment_method`; api_call `status_code` (100..=599), `endpoint`,
    /// `method` (upper-case), `response_time_ms` (>= 0); heartbeat
    /// `heart_rate` (0..=300); click `element`, `page`; file_access
    /// `file_path`, `action`.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, Schema};

    use super::*;
    use crate::validate::FIELDS;

    #[test]
    fn documented_fields_are_the_accepted_fields() {
        let RefOr::T(Schema::Object(object)) = WireEvent::schema() else {
            panic!("WireEvent is an object schema");
        };
        let documented: Vec<&str> = object.properties.keys().map(String::as_str).collect();
        let mut accepted = FIELDS.to_vec();
        accepted.sort_unstable();
        let mut documented_sorted = documented.clone();
        documented_sorted.sort_unstable();
        assert_eq!(documented_sorted, accepted);
        assert_eq!(object.required, vec!["user_id", "type"]);
    }
}
