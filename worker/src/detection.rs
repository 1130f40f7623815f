//! The anomaly engine inside a batch's transaction: [`Detection`] holds a
//! lane's staged detector state and runs the engine's steps that the
//! transaction (`pipeline/durable.rs`) sequences between the store's
//! statements: the users whose stored history must be replayed first,
//! the replay, the evaluation of the rows that were new; and it keeps a
//! user's state as it was when a row's own transaction fails.

use std::time::Duration;

use eventpipe_anomaly::{Anomaly, Past, Payload, Staged, UserState};
use eventpipe_store::NewEvent;
use eventpipe_store::anomalies::PastEvent;

/// Whose stored events to replay, and how far back per event type (`*`:
/// any) before the batch's first event of the user.
pub struct History {
    /// Whose events.
    pub users: Vec<String>,
    /// Per event type, how far back.
    pub lookbacks: Vec<(String, Duration)>,
}

/// A batch's staged detector state, evaluated inside its transaction.
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

impl Detection<'_> {
    /// The stored history to replay before this batch is evaluated; `None`
    /// when none is needed.
    pub fn history(&self) -> Option<History> {
        (!self.staged.missing.is_empty()).then(|| History {
            users: self.staged.missing.clone(),
            lookbacks: self.staged.lookbacks(),
        })
    }

    /// Replays the history asked for, each user's events in partition
    /// order.
    pub fn replay(&mut self, past: Vec<PastEvent>) {
        for event in past {
            self.staged.replay(&Past {
                user_id: event.user_id,
                event_type: event.event_type,
                ts: event.event_ts,
                payload: event.payload,
            });
        }
        self.staged.missing.clear();
    }

    /// Evaluates the rows that were new in this batch, in batch order (a
    /// redelivered row was evaluated when it was new); returns the
    /// anomalies they raise.
    pub fn evaluate(&mut self, new_rows: &[&NewEvent]) -> Vec<Anomaly> {
        let span = eventpipe_service::child_span!(
            "evaluate rules",
            rows = new_rows.len(),
            anomalies = tracing::field::Empty,
        );
        let _entered = span.enter();
        let mut found = Vec::new();
        for &row in new_rows {
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

    /// Called before `row` is written on its own (row-by-row retries).
    pub fn row_starting(&mut self, row: &NewEvent) {
        self.before = self.staged.state_of(&row.user_id);
    }

    /// Called after `row`'s own transaction failed, so the state built for
    /// it is put back.
    pub fn row_failed(&mut self, row: &NewEvent) {
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
