//! Names every producer and consumer of eventpipe topics agrees on: default
//! topic names (partition counts are the `KAFKA_*_PARTITIONS` variables'
//! defaults, in `eventpipe_service::settings::kafka`), message header names, and the schema
//! version those headers carry.

/// Default name of the topic accepted events are produced to.
pub const EVENTS_TOPIC: &str = "events";
/// Default name of the dead-letter topic for messages the worker cannot store.
pub const DLQ_TOPIC: &str = "events.dlq";
/// Default name of the topic detected anomalies are published to.
pub const ANOMALIES_TOPIC: &str = "anomalies";

/// Default consumer group of the workers: their committed offsets say
/// what is stored, for the workers themselves, the API's backlog bound and
/// the operations commands.
pub const GROUP_ID: &str = "eventpipe-worker";

/// The most bytes a redrive (`eventpipe dlq redrive`) may have on one
/// partition of the events topic that the workers have not committed: it
/// waits for the workers before sending more, and does not send a message
/// larger than this (the API's events are at most 64 KiB unless
/// `API_MAX_EVENT_BYTES` says otherwise). An API that bounds the backlog
/// by bytes (`API_MAX_BACKLOG_BYTES`) leaves this much room under its
/// bound, so a redrive cannot push a partition past what it keeps.
pub const REDRIVE_UNCOMMITTED_BYTES: u64 = 256 * 1024;

/// Header naming the version of the value's schema.
pub const HEADER_SCHEMA_VERSION: &str = "eventpipe-schema-version";
/// Header carrying the id of the HTTP request that accepted the event.
pub const HEADER_REQUEST_ID: &str = "eventpipe-request-id";
/// Header naming the value's media type.
pub const HEADER_CONTENT_TYPE: &str = "content-type";

/// Header on a DLQ message naming why it is there (`not_json`,
/// `invalid_event`, `unsupported_schema`, `refused_by_database`).
pub const HEADER_DLQ_REASON: &str = "eventpipe-dlq-reason";
/// Header on a DLQ message with the full error text.
pub const HEADER_DLQ_ERROR: &str = "eventpipe-dlq-error";
/// Header on a DLQ message naming the topic it was read from.
pub const HEADER_DLQ_SOURCE_TOPIC: &str = "eventpipe-dlq-source-topic";
/// Header on a DLQ message naming the partition it was read from.
pub const HEADER_DLQ_SOURCE_PARTITION: &str = "eventpipe-dlq-source-partition";
/// Header on a DLQ message naming the offset it was read from.
pub const HEADER_DLQ_SOURCE_OFFSET: &str = "eventpipe-dlq-source-offset";
/// Header on a message `eventpipe dlq redrive` put back on the events
/// topic: the DLQ message it came from, `topic/partition/offset`. The
/// worker keeps it if the message fails again, so the next redrive knows.
pub const HEADER_REDRIVEN_FROM: &str = "eventpipe-redriven-from";

/// The wire format version this crate implements; sent in
/// [`HEADER_SCHEMA_VERSION`].
pub const SCHEMA_VERSION: &str = "1";
