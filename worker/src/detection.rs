//! The anomaly engine inside a batch's transaction: [`Detection`] lends
//! the store the engine's steps (replay a user's stored history, evaluate
//! the rows that were new) without the store knowing the engine, and
//! keeps a user's state as it was when a row's own transaction fails.

use eventpipe_anomaly::{Anomaly, Past, Payload, Staged, UserState};
use eventpipe_store::{History, NewEvent, WithinBatch};

/// A batch's staged detector state, as the store's [`WithinBatch`].
pub struct Detection<'a> {
    staged: &'a mut Staged,
    /// A user's state before the row being written on its own.
    before: Option<UserState>,
}

impl<'a> Detection<'a> {
    /// Evaluates with `staged`.
    pub fn new(staged: &'a mut Staged) -> Self {
        Self {
            staged,
            before: None,
        }
    }
}

impl WithinBatch for Detection<'_> {
    fn history(&self) -> Option<History> {
        (!self.staged.missing.is_empty()).then(|| History {
            users: self.staged.missing.clone(),
            lookbacks: self.staged.lookbacks(),
        })
    }

    fn replay(&mut self, past: Vec<Past>) {
        for event in &past {
            self.staged.replay(event);
        }
        self.staged.missing.clear();
    }

    fn evaluate(&mut self, new_rows: Vec<&NewEvent>) -> Vec<Anomaly> {
        let span = eventpipe_service::child_span!(
            "evaluate rules",
            rows = new_rows.len(),
            anomalies = tracing::field::Empty,
        );
        let _entered = span.enter();
        let mut found = Vec::new();
        for row in new_rows {
            let parsed;
            let payload = if !self.staged.needs_payload(&row.event_type) {
                Payload::Empty
            } else if let Some(fields) = Payload::split(&row.payload) {
                fields
            } else {
                parsed = serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null);
                Payload::Parsed(&parsed)
            };
            let fired = self.staged.evaluate(
                row.event_id,
                &row.user_id,
                &row.event_type,
                row.event_ts,
                &payload,
            );
            if !fired.is_empty() {
                let event = as_stored(row);
                found.extend(fired.into_iter().map(|a| a.with_event(event.clone())));
            }
        }
        span.record("anomalies", found.len());
        found
    }

    fn row_starting(&mut self, row: &NewEvent) {
        self.before = self.staged.state_of(&row.user_id);
    }

    fn row_failed(&mut self, row: &NewEvent) {
        if let Some(before) = self.before.take() {
            self.staged.restore(&row.user_id, before);
        }
    }
}

/// `row` as the events table holds it, for an anomaly's evidence.
fn as_stored(row: &NewEvent) -> serde_json::Value {
    serde_json::json!({
        "event_id": row.event_id,
        "user_id": row.user_id,
        "type": row.event_type,
        "source": row.source,
        "time": row.event_ts,
        "received_at": row.received_at,
        "payload": serde_json::from_str::<serde_json::Value>(&row.payload)
            .unwrap_or(serde_json::Value::Null),
    })
}
