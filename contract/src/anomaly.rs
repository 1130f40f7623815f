//! An anomaly as the worker stores it in PostgreSQL and publishes it on the
//! anomalies topic: the record both sides of that topic agree on. The rule
//! engine (`eventpipe-anomaly`) makes them; the store writes them; neither
//! needs the other for it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// An anomaly, as stored and published.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Anomaly {
    /// UUIDv5 of the rule and the event.
    pub anomaly_id: Uuid,
    /// The event that triggered it.
    pub event_id: Uuid,
    /// Its user.
    pub user_id: String,
    /// The rule's name.
    pub rule: String,
    /// `low`, `medium` or `high`.
    pub severity: &'static str,
    /// The rule's description.
    pub description: String,
    /// The triggering event's time.
    pub event_ts: DateTime<Utc>,
    /// What the rule observed, and its limits.
    pub details: Value,
    /// What fired it: `{"event": {...}}`, the triggering event as stored
    /// (id, user, type, source, time, receipt time, payload). The engine
    /// knows only what its rules read, so whoever stores the event fills
    /// this in ([`Anomaly::with_event`]); `null` on anomalies stored
    /// before evidence was kept.
    pub evidence: Value,
}

impl Anomaly {
    /// This anomaly with `event`, the triggering event as stored, as its
    /// evidence.
    pub fn with_event(mut self, event: Value) -> Self {
        self.evidence = serde_json::json!({ "event": event });
        self
    }
}
