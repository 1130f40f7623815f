//! A message as the worker received it: its payload, headers, partition
//! and offset, from Kafka or from a function's event.

use eventpipe_contract::kafka;
use eventpipe_service::telemetry::{self, TraceHeaders};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};

/// One message read from the events topic.
pub struct Received(pub(super) OwnedMessage);

/// A message as a function platform hands it over (decoded from its
/// event; see [`crate::function`]).
pub struct Record {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Its timestamp, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl From<Record> for Received {
    fn from(record: Record) -> Self {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        Received(OwnedMessage::new(
            record.value,
            record.key,
            record.topic,
            rdkafka::Timestamp::CreateTime(record.timestamp_ms),
            record.partition,
            record.offset,
            Some(headers),
        ))
    }
}

impl From<OwnedMessage> for Received {
    fn from(message: OwnedMessage) -> Self {
        Received(message)
    }
}

impl Received {
    /// The topic it was read from.
    pub fn topic(&self) -> &str {
        self.0.topic()
    }

    /// The message key.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.key()
    }

    /// Its timestamp in milliseconds since the epoch, if it has one.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.0.timestamp().to_millis()
    }

    /// Its headers, in order (a header without a value has an empty one).
    pub fn headers(&self) -> Vec<(&str, &[u8])> {
        self.0
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The message value.
    pub fn payload(&self) -> Option<&[u8]> {
        self.0.payload()
    }

    /// The partition it was read from.
    pub fn partition(&self) -> i32 {
        self.0.partition()
    }

    /// Its offset in that partition.
    pub fn offset(&self) -> i64 {
        self.0.offset()
    }

    /// The schema version header, if present.
    pub fn schema_version(&self) -> Option<&[u8]> {
        self.header(kafka::HEADER_SCHEMA_VERSION)
    }

    /// The W3C trace context the API put on the message, as it came
    /// (checked only by [`TraceHeaders::context`]).
    pub fn trace(&self) -> Option<TraceHeaders> {
        let text = |name| self.header(name).and_then(|v| std::str::from_utf8(v).ok());
        Some(TraceHeaders {
            traceparent: text(telemetry::TRACEPARENT)?.to_owned(),
            tracestate: text(telemetry::TRACESTATE).map(str::to_owned),
        })
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == name).and_then(|h| h.value))
    }
}
