//! The bound on what the workers have yet to consume. An event answered
//! 202 must still be in the events topic when a worker gets to it, and a
//! broker that deletes by size (the local run's embedded Kafka keeps the
//! newest 5 MiB of each partition; Kafka's `retention.bytes`) deletes
//! what the workers have not read once they fall far enough behind. So
//! the API refuses new events (503 `overloaded` + `Retry-After`, nothing
//! produced) before the backlog on a partition can reach what the
//! partition keeps. The workers' progress is their consumer group's
//! committed offsets (`KAFKA_GROUP_ID`), read every `API_BACKLOG_CHECK_MS`
//! on a client that never joins the group.
//!
//! Two bounds, per partition, each off unless set:
//!
//! - **`API_MAX_BACKLOG_BYTES`**, kept by construction for this replica's
//!   own events. The API places each event on its partition itself (by
//!   the CRC-32 of its user id, as librdkafka's default partitioner does)
//!   and charges that partition the most the event can take in the log
//!   ([`eventpipe_service::kafka::stored_bytes_bound`]) *before* producing
//!   it. A charge stays until the group has committed past the event's
//!   offset. An event whose send failed may be in the log all the same:
//!   its charge stays until the group has committed past the partition's
//!   end as read [`UNSURE_SETTLES_AFTER`] after the failure, when no
//!   produce request still on its way can land. A request is admitted only
//!   if every partition it touches stays within the bound less
//!   [`headroom`]: a broker deletes whole batches, and the batch holding
//!   the committed offset may also hold committed events, which are no
//!   longer charged (one batch, [`BATCH_BYTES`], or one event when larger);
//!   and a redrive may have its own messages there
//!   ([`REDRIVE_UNCOMMITTED_BYTES`]). So the log from the group's committed
//!   offset to its end never holds more than the bound, and a broker that
//!   keeps the bound deletes nothing the workers have not committed.
//!   Messages already in the backlog when the API starts are charged at
//!   the largest message Kafka takes ([`INHERITED_MESSAGE_BYTES`]) each,
//!   until committed. The embedded broker also keeps at most 100,000
//!   batches per partition: every event is charged at least a batch
//!   header (61 bytes), so 5 MiB of charges is fewer than 86,000 batches.
//!   Several replicas each count only their own events: give each the
//!   bound divided by their number, or use the message bound.
//! - **`API_MAX_BACKLOG_MESSAGES`**: while any partition has that many
//!   messages the group has not committed, every request is refused. It
//!   counts every producer's messages, so it suits a fleet of replicas,
//!   but it is read, not reserved: between two reads the replicas can
//!   accept one check interval's worth more (docs/OPERATIONS.md sets it
//!   against `retention.bytes` with that margin).
//!
//! Time-based retention (`retention.ms`) is another matter: no bound on
//! accepting new events keeps old ones from expiring while the workers
//! are stopped. `eventpipe status` compares the oldest unconsumed
//! message's age with it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eventpipe_service::kafka::PartitionLag;

mod limits;

pub use limits::{BacklogLimits, headroom};

use crate::error::{AppError, too_large};
use crate::metrics::Metrics;
use crate::sink::{Outgoing, Sent};

/// How long after a failed send its events may still reach the log: a
/// produce request can wait in a broker for up to librdkafka's
/// `request.timeout.ms` (30 s by default) before it is written.
pub const UNSURE_SETTLES_AFTER: Duration = Duration::from_secs(30);

/// What each message found in the backlog at start-up is charged: the
/// largest message a Kafka broker takes by default (`message.max.bytes`).
pub const INHERITED_MESSAGE_BYTES: u64 = 1_048_588;

/// The share of the byte bound at which `/ready` says the backlog is full.
const NOT_READY_FROM_PERCENT: u64 = 90;

/// The bounds, the charges and the workers' progress as last read.
pub struct Backlog {
    limits: BacklogLimits,
    topic: String,
    /// What charges may reach on a partition: the byte bound less
    /// [`headroom`].
    budget: Option<u64>,
    metrics: Metrics,
    ledger: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    partitions: Vec<Partition>,
    /// Whether the workers' progress has been read since start-up.
    read: bool,
    /// Why the last read failed, when it did.
    unread: Option<String>,
}

/// One partition of the events topic.
#[derive(Debug, Default)]
struct Partition {
    /// Where the group resumes, as last read.
    committed: i64,
    /// The partition's end, as last read.
    high: i64,
    /// Charges of acknowledged events, by the highest offset each covers
    /// (one per request): released once the group committed past it.
    acked: BTreeMap<i64, u64>,
    acked_bytes: u64,
    /// Charges of events sent and not yet answered for.
    in_flight: u64,
    /// Charges of events whose send failed: they may be in the log.
    unsure: Vec<Unsure>,
    /// The partition's end at start-up: what lies before it was there
    /// before this API, at sizes it does not know.
    inherited_until: i64,
}

#[derive(Debug)]
struct Unsure {
    bytes: u64,
    /// From when a read of the partition's end covers wherever the
    /// events may have landed.
    settles_at: Instant,
    /// That end, once read: the charge goes when the group passes it.
    until: Option<i64>,
}

impl Partition {
    /// Bytes charged against the bound.
    fn charged(&self) -> u64 {
        let inherited = u64::try_from(self.inherited_until - self.committed).unwrap_or(0);
        self.acked_bytes
            + self.in_flight
            + self.unsure.iter().map(|u| u.bytes).sum::<u64>()
            + inherited * INHERITED_MESSAGE_BYTES
    }

    /// Messages after the committed offset, as last read.
    fn lag(&self) -> i64 {
        (self.high - self.committed).max(0)
    }
}

impl Backlog {
    /// The bounds of `limits` for the events topic `topic`, whose events
    /// are at most `max_event_bytes` and produced with `compression`.
    pub fn new(
        limits: BacklogLimits,
        topic: &str,
        max_event_bytes: usize,
        compression: &str,
        metrics: Metrics,
    ) -> Self {
        let budget = limits
            .max_bytes
            .map(|max| max.saturating_sub(headroom(max_event_bytes, compression)));
        metrics
            .backlog_limit_bytes
            .set(budget.map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)));
        metrics.backlog_limit_messages.set(
            limits
                .max_messages
                .map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX)),
        );
        Backlog {
            limits,
            topic: topic.to_owned(),
            budget,
            metrics,
            ledger: Mutex::default(),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> &BacklogLimits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many partitions to place events on: with a byte bound, the API
    /// places events itself, once it knows the partitions.
    pub fn placement(&self) -> Option<i32> {
        self.budget?;
        let count = self.lock().partitions.len();
        i32::try_from(count).ok().filter(|&n| n > 0)
    }

    /// Charges `outgoing`'s events to their partitions, or refuses them:
    /// 503 `overloaded` when a partition's backlog is at a bound, 413 when
    /// the request alone takes more of a partition than the byte bound
    /// ever leaves.
    pub fn reserve(&self, outgoing: &Outgoing<'_>) -> Result<Reservation<'_>, AppError> {
        let events = outgoing.stored_bytes.len();
        if let Some(max) = self.limits.max_messages {
            self.check_messages(max)
                .map_err(|e| self.refused(e, "messages", events))?;
        }
        let Some(budget) = self.budget else {
            return Ok(Reservation::free(self));
        };
        let placed = match &outgoing.partitions {
            Some(partitions) => partitions
                .iter()
                .copied()
                .zip(outgoing.stored_bytes.iter().copied())
                .collect::<Vec<_>>(),
            None => {
                let reason = self.lock().unread.clone();
                return Err(self.refused(self.unread(reason), "bytes", events));
            }
        };
        let charges = per_partition(&placed);
        if let Some(&(partition, bytes)) = charges.iter().find(|(_, b)| *b > budget) {
            return Err(too_large(format!(
                "the request's events for partition {partition} of {} may take {bytes} bytes there, more than API_MAX_BACKLOG_BYTES ever leaves for new events ({budget}); send fewer of one user's events at once",
                self.topic
            )));
        }
        let mut ledger = self.lock();
        if !ledger.read {
            let reason = ledger.unread.clone();
            drop(ledger);
            return Err(self.refused(self.unread(reason), "bytes", events));
        }
        for &(partition, bytes) in &charges {
            let charged = ledger.partition(partition).charged();
            if charged + bytes > budget {
                drop(ledger);
                let detail = format!(
                    "partition {partition} of {} holds up to {charged} bytes the workers (group {}) have not committed; this request's {bytes} more would pass API_MAX_BACKLOG_BYTES less the room kept free ({budget}): the workers are behind",
                    self.topic, self.limits.group_id
                );
                return Err(self.refused(detail, "bytes", events));
            }
        }
        for &(partition, bytes) in &charges {
            ledger.partition(partition).in_flight += bytes;
        }
        Ok(Reservation {
            backlog: self,
            placed,
            charges,
            settled: false,
        })
    }

    fn unread(&self, reason: Option<String>) -> String {
        format!(
            "the workers' progress (group {}) has not been read yet{}, so API_MAX_BACKLOG_BYTES cannot be kept",
            self.limits.group_id,
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        )
    }

    fn check_messages(&self, max: u64) -> Result<(), String> {
        let ledger = self.lock();
        let over = ledger
            .partitions
            .iter()
            .enumerate()
            .find(|(_, p)| u64::try_from(p.lag()).unwrap_or(0) >= max);
        match over {
            Some((partition, p)) => Err(format!(
                "partition {partition} of {} has {} messages the workers (group {}) have not committed, at API_MAX_BACKLOG_MESSAGES ({max}): the workers are behind",
                self.topic,
                p.lag(),
                self.limits.group_id
            )),
            None => Ok(()),
        }
    }

    fn refused(&self, detail: String, bound: &str, events: usize) -> AppError {
        self.metrics
            .backlog_refused
            .with_label_values(&[bound])
            .inc_by(events as u64);
        AppError::Overloaded {
            detail,
            retry_after: Duration::from_secs(1),
        }
    }

    /// Takes in a read of the workers' progress that began at `began`:
    /// releases what the group committed past, and notes the backlog.
    pub fn observe(&self, lags: &[PartitionLag], began: Instant) {
        let mut ledger = self.lock();
        let first = !ledger.read;
        for lag in lags {
            let p = ledger.partition(lag.partition);
            p.committed = lag.committed;
            p.high = lag.high;
            if first {
                p.inherited_until = lag.high;
            }
            let kept = p.acked.split_off(&lag.committed);
            let released: u64 = std::mem::replace(&mut p.acked, kept).values().sum();
            p.acked_bytes -= released;
            for unsure in &mut p.unsure {
                if unsure.until.is_none() && began >= unsure.settles_at {
                    unsure.until = Some(lag.high);
                }
            }
            p.unsure
                .retain(|u| u.until.is_none_or(|until| lag.committed < until));
        }
        ledger.read = true;
        ledger.unread = None;
        for (partition, p) in ledger.partitions.iter().enumerate() {
            let label = partition.to_string();
            if self.budget.is_some() {
                self.metrics
                    .backlog_bytes
                    .with_label_values(&[&label])
                    .set(i64::try_from(p.charged()).unwrap_or(i64::MAX));
            }
            self.metrics
                .backlog_messages
                .with_label_values(&[&label])
                .set(p.lag());
        }
    }

    /// Notes that reading the workers' progress failed.
    pub fn unobserved(&self, error: &anyhow::Error) {
        self.lock().unread = Some(format!("{error:#}"));
    }

    /// Why the backlog keeps this replica from accepting events, when it
    /// does (for `/ready`): a partition at the message bound, within a
    /// tenth of the byte bound, or the workers' progress not read yet.
    pub fn problem(&self) -> Option<String> {
        if let Some(max) = self.limits.max_messages
            && let Err(reason) = self.check_messages(max)
        {
            return Some(reason);
        }
        let budget = self.budget?;
        let ledger = self.lock();
        if !ledger.read {
            let reason = ledger.unread.clone();
            drop(ledger);
            return Some(self.unread(reason));
        }
        let (partition, charged) = ledger
            .partitions
            .iter()
            .map(Partition::charged)
            .enumerate()
            .max_by_key(|&(_, charged)| charged)?;
        (charged * 100 >= budget * NOT_READY_FROM_PERCENT).then(|| {
            format!(
                "partition {partition} of {} holds up to {charged} bytes the workers (group {}) have not committed, {}% of what API_MAX_BACKLOG_BYTES leaves ({budget})",
                self.topic,
                self.limits.group_id,
                charged * 100 / budget.max(1)
            )
        })
    }
}

impl Ledger {
    fn partition(&mut self, partition: i32) -> &mut Partition {
        let index = usize::try_from(partition).unwrap_or(0);
        if self.partitions.len() <= index {
            self.partitions.resize_with(index + 1, Partition::default);
        }
        &mut self.partitions[index]
    }
}

/// `placed` (partition, bytes) summed by partition.
fn per_partition(placed: &[(i32, u64)]) -> Vec<(i32, u64)> {
    let mut sums: BTreeMap<i32, u64> = BTreeMap::new();
    for &(partition, bytes) in placed {
        *sums.entry(partition).or_default() += bytes;
    }
    sums.into_iter().collect()
}

/// A request's charges, held while its events are produced. Settled with
/// what became of them ([`Reservation::settle`]); dropped unsettled (the
/// request was abandoned mid-send), every charge stays as if the send
/// had failed.
pub struct Reservation<'a> {
    backlog: &'a Backlog,
    /// Per event: its partition and charge.
    placed: Vec<(i32, u64)>,
    /// Per partition: the sum.
    charges: Vec<(i32, u64)>,
    settled: bool,
}

impl<'a> Reservation<'a> {
    /// A reservation that charges nothing (no byte bound).
    fn free(backlog: &'a Backlog) -> Self {
        Reservation {
            backlog,
            placed: Vec::new(),
            charges: Vec::new(),
            settled: true,
        }
    }

    /// Moves each event's charge to where `sent` says it went: acknowledged
    /// at an offset (released once the group commits past it), maybe
    /// stored (kept until the group passes the partition's end), or never
    /// sent (released now).
    pub fn settle(mut self, sent: &Sent) {
        self.finish(Some(sent));
    }

    fn finish(&mut self, sent: Option<&Sent>) {
        if self.settled {
            return;
        }
        self.settled = true;
        let settles_at = Instant::now() + UNSURE_SETTLES_AFTER;
        let mut acked: BTreeMap<i32, (i64, u64)> = BTreeMap::new();
        let mut unsure: BTreeMap<i32, u64> = BTreeMap::new();
        for (index, &(partition, bytes)) in self.placed.iter().enumerate() {
            match sent {
                Some(sent) => match sent.delivered.get(index).copied().flatten() {
                    Some(delivered) => {
                        let run = acked.entry(delivered.partition).or_insert((i64::MIN, 0));
                        run.0 = run.0.max(delivered.offset);
                        run.1 += bytes;
                    }
                    None if index < sent.enqueued => *unsure.entry(partition).or_default() += bytes,
                    None => {}
                },
                None => *unsure.entry(partition).or_default() += bytes,
            }
        }
        let mut ledger = self.backlog.lock();
        for &(partition, bytes) in &self.charges {
            let p = ledger.partition(partition);
            p.in_flight = p.in_flight.saturating_sub(bytes);
        }
        for (partition, (last, bytes)) in acked {
            let p = ledger.partition(partition);
            *p.acked.entry(last).or_default() += bytes;
            p.acked_bytes += bytes;
        }
        for (partition, bytes) in unsure {
            ledger.partition(partition).unsure.push(Unsure {
                bytes,
                settles_at,
                until: None,
            });
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests;
