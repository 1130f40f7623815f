//! The bounds' settings and the room every byte bound keeps free below
//! itself.

use std::time::Duration;

use eventpipe_contract::kafka::REDRIVE_UNCOMMITTED_BYTES;
use eventpipe_service::kafka::stored_bytes_bound;

use crate::sink::BATCH_BYTES;

/// What a message value may hold beyond the event as the client sent it
/// (`API_MAX_EVENT_BYTES`): the fields the API fills in (`event_id`,
/// `received_at`, a default `source` or `timestamp`, the raw timestamp).
const ENVELOPE_BYTES: usize = 1024;

/// What the byte bound keeps free below itself on every partition: one
/// producer batch (or one event, if larger) and a redrive's room. A bound
/// needs at least twice this.
pub fn headroom(max_event_bytes: usize, compression: &str) -> u64 {
    let largest = stored_bytes_bound(
        0,
        max_event_bytes + ENVELOPE_BYTES,
        std::iter::empty(),
        compression,
    );
    BATCH_BYTES.max(largest) + REDRIVE_UNCOMMITTED_BYTES
}

/// The bounds' settings (`API_MAX_BACKLOG_*`, `KAFKA_GROUP_ID`,
/// `API_BACKLOG_CHECK_MS`), read with the API's configuration.
#[derive(Debug, Clone)]
pub struct BacklogLimits {
    /// `API_MAX_BACKLOG_BYTES`: what the events topic keeps per partition;
    /// `None`: no byte bound.
    pub max_bytes: Option<u64>,
    /// `API_MAX_BACKLOG_MESSAGES`; `None`: no message bound.
    pub max_messages: Option<u64>,
    /// `KAFKA_GROUP_ID`: the workers' consumer group.
    pub group_id: String,
    /// `API_BACKLOG_CHECK_MS`.
    pub check_interval: Duration,
}

impl BacklogLimits {
    /// Whether any bound is set.
    pub fn any(&self) -> bool {
        self.max_bytes.is_some() || self.max_messages.is_some()
    }
}
