//! A batch decoded and split into write lanes by user.

use eventpipe_service::telemetry::{self, SpanContext, TraceHeaders};
use eventpipe_store::NewEvent;

use crate::decode::{Verdict, decode};
use crate::source::Received;

/// One event of a batch to store: its row, the index of the message it
/// came in, and the trace context headers that message carried.
pub(super) struct Row {
    pub(super) event: NewEvent,
    pub(super) message: usize,
    pub(super) trace: Option<TraceHeaders>,
}

/// A decoded batch, ready to be made durable.
pub(super) struct Prepared {
    pub(super) messages: Vec<Received>,
    /// The rows, grouped by lane (in batch order within each).
    pub(super) rows: Vec<Row>,
    /// Where each lane's rows are in `rows`, lane by lane.
    pub(super) lanes: Vec<std::ops::Range<usize>>,
    /// For each message, the span context it carried; empty when traces
    /// are not exported.
    pub(super) contexts: Vec<Option<SpanContext>>,
    /// Messages for the DLQ: index, reason, error.
    pub(super) poison: Vec<(usize, &'static str, String)>,
    /// [`crate::source::Source::revocations`] when its first message came.
    pub(super) revocations: u64,
}

impl Prepared {
    /// The row that message `i` became, if it became one.
    pub(super) fn row_of(&self, i: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.message == i)
    }
}

/// The lane of a user's events among `lanes`: a hash of the id (FNV-1a),
/// the same in every batch and every worker.
pub fn lane_of(user_id: &str, lanes: usize) -> usize {
    let hash = user_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % lanes as u64) as usize
}

pub(super) fn prepare(messages: Vec<Received>, revocations: u64, lanes: usize) -> Prepared {
    let mut rows = Vec::with_capacity(messages.len());
    let mut poison = Vec::new();
    let traced = telemetry::enabled();
    let mut contexts = Vec::with_capacity(if traced { messages.len() } else { 0 });
    for (i, m) in messages.iter().enumerate() {
        let trace = m.trace();
        if traced {
            contexts.push(trace.as_ref().and_then(TraceHeaders::context));
        }
        match decode(m.payload(), m.schema_version(), m.partition(), m.offset()) {
            Verdict::Row(event) => rows.push(Row {
                event: *event,
                message: i,
                trace,
            }),
            Verdict::Poison { reason, error } => poison.push((i, reason, error)),
        }
    }
    let (rows, lanes) = by_lane(rows, lanes);
    Prepared {
        messages,
        rows,
        lanes,
        contexts,
        poison,
        revocations,
    }
}

/// Reorders the rows so each lane's are together, in batch order; where
/// each lane's rows are (a range per lane, empty when it has none).
fn by_lane(rows: Vec<Row>, lanes: usize) -> (Vec<Row>, Vec<std::ops::Range<usize>>) {
    let lanes = lanes.max(1);
    let mut tagged: Vec<(usize, Row)> = rows
        .into_iter()
        .map(|row| (lane_of(&row.event.user_id, lanes), row))
        .collect();
    // Stable: batch order within a lane.
    tagged.sort_by_key(|(lane, _)| *lane);
    let mut bounds = Vec::with_capacity(lanes);
    let mut start = 0;
    for lane in 0..lanes {
        let end = start + tagged[start..].iter().take_while(|t| t.0 == lane).count();
        bounds.push(start..end);
        start = end;
    }
    (tagged.into_iter().map(|(_, row)| row).collect(), bounds)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::Utc;

    use super::*;

    fn row(user: &str, n: u128) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::from_u128(n),
            user_id: user.to_owned(),
            event_type: "click".to_owned(),
            source: "web".to_owned(),
            event_ts: Utc::now(),
            timestamp_raw: None,
            received_at: Utc::now(),
            payload: "{}".to_owned(),
            kafka_partition: 0,
            kafka_offset: i64::try_from(n).unwrap(),
        }
    }

    /// The rows' events, message indexes and traces, as three lists.
    fn unzip(rows: Vec<Row>) -> (Vec<NewEvent>, Vec<usize>, Vec<Option<TraceHeaders>>) {
        let mut unzipped = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            unzipped.0.push(row.event);
            unzipped.1.push(row.message);
            unzipped.2.push(row.trace);
        }
        unzipped
    }

    #[test]
    fn lanes_keep_each_users_events_together_in_batch_order() {
        let users = ["ann", "bob", "cy", "dee", "ed", "flo", "gus"];
        let rows: Vec<NewEvent> = (0..70u128)
            .map(|n| row(users[n as usize % users.len()], n))
            .collect();
        let rows = rows.into_iter().enumerate().map(|(message, event)| Row {
            event,
            message,
            trace: None,
        });
        let (rows, lanes) = by_lane(rows.collect(), 3);
        let (rows, messages, traces) = unzip(rows);
        assert_eq!((rows.len(), messages.len(), traces.len()), (70, 70, 70));
        assert_eq!(lanes.len(), 3, "a range per lane: {lanes:?}");
        assert!(
            lanes.iter().filter(|l| !l.is_empty()).count() >= 2,
            "{lanes:?}"
        );
        assert_eq!(lanes.iter().map(|l| l.len()).sum::<usize>(), 70);
        for lane in &lanes {
            let users: HashSet<&str> = rows[lane.clone()]
                .iter()
                .map(|r| r.user_id.as_str())
                .collect();
            for (other, range) in lanes.iter().enumerate().filter(|(_, r)| *r != lane) {
                assert!(
                    rows[range.clone()]
                        .iter()
                        .all(|r| !users.contains(r.user_id.as_str())),
                    "a user in two lanes ({other})"
                );
            }
            // Batch order within the lane; the message index follows its row.
            let offsets: Vec<i64> = rows[lane.clone()].iter().map(|r| r.kafka_offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        }
        for (row, message) in rows.iter().zip(&messages) {
            assert_eq!(row.kafka_offset, *message as i64);
        }
        assert_eq!(lane_of("ann", 3), lane_of("ann", 3));
    }

    #[test]
    fn one_lane_or_no_rows_changes_nothing() {
        let rows = vec![row("b", 1), row("a", 2)];
        let rows = rows.into_iter().enumerate().map(|(message, event)| Row {
            event,
            message,
            trace: None,
        });
        let (rows, lanes) = by_lane(rows.collect(), 1);
        let (rows, _, _) = unzip(rows);
        assert_eq!(rows[0].user_id, "b");
        assert_eq!(lanes.len(), 1);
        assert_eq!(lanes[0], 0..2);
        let (_, lanes) = by_lane(Vec::new(), 4);
        assert!(lanes.len() == 4 && lanes.iter().all(|l| l.is_empty()));
    }
}
