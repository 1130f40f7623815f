//! The delivery audit, which k6 has no notion of: after the run and a drain
//! period, every row of the run's id range is read back from PostgreSQL and
//! compared with the ledger. Accepted but missing is a loss; more than one
//! row for an id is a duplicate; a row for an event that was only ever
//! refused should not exist. During the run, a sample of accepted events is
//! polled for to measure how soon an accepted event becomes readable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::ledger::{ACCEPTED, BLOCK, Ledger, REJECTED, RunIds, UNKNOWN};
use crate::stats::Recorder;

/// Rows are read back this many sequence numbers at a time.
const READ_CHUNK: u64 = 256 * BLOCK;
/// How often pending samples are looked for.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Offers at most one accepted event per `every` to the visibility poller.
#[derive(Debug)]
pub struct Sampler {
    ids: RunIds,
    start: Instant,
    every_us: u64,
    next_us: AtomicU64,
    found: mpsc::UnboundedSender<(Uuid, Instant)>,
}

impl Sampler {
    /// A sampler feeding `found`.
    pub fn new(
        ids: RunIds,
        every: Duration,
        found: mpsc::UnboundedSender<(Uuid, Instant)>,
    ) -> Self {
        Self {
            ids,
            start: Instant::now(),
            every_us: every.as_micros() as u64,
            next_us: AtomicU64::new(0),
            found,
        }
    }

    /// Event `seq` was accepted at `at`: sample it if one is due.
    pub fn offer(&self, seq: u64, at: Instant) {
        let now = at.saturating_duration_since(self.start).as_micros() as u64;
        let due = self.next_us.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_us
                .compare_exchange(
                    due,
                    now + self.every_us,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let _ = self.found.send((self.ids.uuid(seq), at));
        }
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Connects to the audit database, saying which one failed.
pub async fn connect(url: &str) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the audit database: {e}"))
}

/// Polls for sampled events until `stop`, recording when each became
/// readable.
pub async fn watch_visibility(
    mut connection: AsyncPgConnection,
    mut offered: mpsc::UnboundedReceiver<(Uuid, Instant)>,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    use diesel_async::RunQueryDsl;
    let mut pending: Vec<(Uuid, Instant)> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        while let Ok(sample) = offered.try_recv() {
            pending.push(sample);
        }
        if pending.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = pending.iter().map(|(id, _)| *id).collect();
        let Ok(rows) = diesel::sql_query("SELECT event_id FROM events WHERE event_id = ANY($1)")
            .bind::<Array<SqlUuid>, _>(ids)
            .load::<Row>(&mut connection)
            .await
        else {
            continue;
        };
        let seen = Instant::now();
        pending.retain(|(id, accepted)| {
            let found = rows.iter().any(|r| r.event_id == *id);
            if found {
                recorder.visible(seen.saturating_duration_since(*accepted));
            }
            !found
        });
    }
}

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Distinct events accepted at least once.
    pub accepted: u64,
    /// Distinct events of the run found stored.
    pub stored: u64,
    /// Accepted events not stored.
    pub lost: u64,
    /// Extra rows beyond the first, over all events.
    pub duplicated: u64,
    /// Events only ever refused, yet stored.
    pub rejected_stored: u64,
    /// Events whose outcome was never known (never accepted or refused).
    pub unknown: u64,
    /// Of those, how many were stored.
    pub unknown_stored: u64,
    /// Rows in the run's id range that the run never sent.
    pub foreign: u64,
    /// Up to ten lost ids, to look for.
    pub lost_examples: Vec<Uuid>,
    /// How long the drain waited for accepted events to appear.
    pub drained: Duration,
}

/// Waits up to `drain` for the accepted events to be stored, then compares
/// every stored row of the run with the ledger.
pub async fn audit(
    connection: &mut AsyncPgConnection,
    ids: &RunIds,
    ledger: &Ledger,
    drain: Duration,
) -> anyhow::Result<Report> {
    use diesel_async::RunQueryDsl;
    let accepted = ledger.accepted();
    let end = ledger
        .blocks()
        .map(|(start, f)| start + f.len() as u64)
        .max()
        .unwrap_or(0);
    let started = Instant::now();
    loop {
        let (lo, hi) = ids.range(0, end.max(1));
        let stored =
            diesel::sql_query("SELECT count(*) AS n FROM events WHERE event_id BETWEEN $1 AND $2")
                .bind::<SqlUuid, _>(lo)
                .bind::<SqlUuid, _>(hi)
                .get_result::<Count>(connection)
                .await?
                .n as u64;
        if stored >= accepted || started.elapsed() >= drain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = started.elapsed();

    let mut report = Report {
        accepted,
        drained,
        ..Report::default()
    };
    let mut from = 0;
    while from < end {
        let to = (from + READ_CHUNK).min(end);
        let (lo, hi) = ids.range(from, to);
        let rows =
            diesel::sql_query("SELECT event_id FROM events WHERE event_id BETWEEN $1 AND $2")
                .bind::<SqlUuid, _>(lo)
                .bind::<SqlUuid, _>(hi)
                .load::<Row>(connection)
                .await?;
        let mut counts = vec![0u32; (to - from) as usize];
        for row in rows {
            match ids.seq(&row.event_id) {
                Some(seq) if (from..to).contains(&seq) => counts[(seq - from) as usize] += 1,
                _ => report.foreign += 1,
            }
        }
        for (i, &count) in counts.iter().enumerate() {
            let seq = from + i as u64;
            let flags = ledger.flags(seq);
            tally(&mut report, ids, seq, flags, count);
        }
        from = to;
    }
    Ok(report)
}

fn tally(report: &mut Report, ids: &RunIds, seq: u64, flags: u8, count: u32) {
    let count = u64::from(count);
    if flags == 0 {
        report.foreign += count;
        return;
    }
    report.stored += u64::from(count > 0);
    report.duplicated += count.saturating_sub(1);
    if flags & ACCEPTED != 0 {
        if count == 0 {
            report.lost += 1;
            if report.lost_examples.len() < 10 {
                report.lost_examples.push(ids.uuid(seq));
            }
        }
    } else if flags & UNKNOWN != 0 {
        report.unknown += 1;
        report.unknown_stored += u64::from(count > 0);
    } else if flags & REJECTED != 0 {
        report.rejected_stored += u64::from(count > 0);
    }
}
