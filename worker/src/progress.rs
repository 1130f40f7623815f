//! [`GroupWatch`]: whether the consumer group gets through the events
//! topic, judged from the broker's numbers (committed offsets and
//! partition ends) rather than from what this worker holds, so a worker
//! with nothing assigned notices when nobody else consumes either.
//!
//! A partition is *stalled* when it has lag and the group's committed
//! offset on it has not moved for `WORKER_STALL_AFTER_SECS`; the group is
//! stalled when any partition is (a dead member may hold some partitions
//! while the others move). A worker holding no partitions
//! while the group is stalled is not doing the job it exists for: it says
//! so on `/ready`, and after `WORKER_REJOIN_AFTER_SECS` of it leaves and
//! rejoins the group to be handed partitions again. Each rejoin starts a
//! rebalance, which can itself take a while (the broker waits for every
//! member, up to its session timeout), so while it stays idle the wait
//! before the next rejoin doubles, up to [`MAX_REJOIN_BACKOFF`] times the
//! first: a worker never keeps its group rebalancing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::source::PartitionLag;

/// The longest wait between rejoins, as a multiple of the first.
pub const MAX_REJOIN_BACKOFF: u32 = 8;

/// Remembers when the group last made progress.
#[derive(Debug)]
pub struct GroupWatch {
    stall_after: Duration,
    rejoin_after: Duration,
    /// Per partition: the committed offset at the last look, and when it
    /// last moved (or the partition had no lag).
    partitions: HashMap<i32, (i64, Instant)>,
    /// Since when this worker holds nothing while the group is stalled
    /// (reset by a rejoin).
    idle_since: Option<Instant>,
    /// The wait before the next rejoin while it stays idle.
    rejoin_wait: Duration,
}

/// What one look at the group says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Messages the group has yet to get through, all partitions.
    pub lag: i64,
    /// The longest any partition has had lag without its committed offset
    /// moving (zero while every partition progresses or has no lag).
    pub stalled_for: Duration,
    /// The partitions stalled for `WORKER_STALL_AFTER_SECS` or more.
    pub stalled: Vec<i32>,
    /// Why this worker is not doing its job, when it is not.
    pub idle: Option<String>,
    /// Whether it should leave and rejoin the group now.
    pub rejoin: bool,
}

impl GroupWatch {
    /// A watch that calls the group stalled after `stall_after` without
    /// progress and has an idle worker rejoin after `rejoin_after` of it.
    pub fn new(stall_after: Duration, rejoin_after: Duration) -> Self {
        GroupWatch {
            stall_after,
            rejoin_after,
            partitions: HashMap::new(),
            idle_since: None,
            rejoin_wait: rejoin_after,
        }
    }

    /// Judges the group from `lags` (every partition) while this worker
    /// holds `assigned` partitions.
    pub fn observe(&mut self, lags: &[PartitionLag], assigned: usize, now: Instant) -> Verdict {
        let lag: i64 = lags.iter().map(|p| p.lag).sum();
        let mut stalled_for = Duration::ZERO;
        let mut stalled = Vec::new();
        for p in lags {
            let seen = self
                .partitions
                .entry(p.partition)
                .or_insert((p.committed, now));
            if p.lag == 0 || seen.0 != p.committed {
                *seen = (p.committed, now);
            }
            let still = now.saturating_duration_since(seen.1);
            stalled_for = stalled_for.max(still);
            if still >= self.stall_after {
                stalled.push(p.partition);
            }
        }
        if assigned > 0 || stalled.is_empty() {
            self.idle_since = None;
            self.rejoin_wait = self.rejoin_after;
            return Verdict {
                lag,
                stalled_for,
                stalled,
                idle: None,
                rejoin: false,
            };
        }
        let idle_since = *self.idle_since.get_or_insert(now);
        let rejoin = now.saturating_duration_since(idle_since) >= self.rejoin_wait;
        if rejoin {
            self.idle_since = Some(now);
            self.rejoin_wait = (self.rejoin_wait * 2).min(self.rejoin_after * MAX_REJOIN_BACKOFF);
        }
        let idle = format!(
            "this worker holds no partition while the group has {lag} messages to consume and has committed nothing on partition(s) {stalled:?} for {} s",
            stalled_for.as_secs()
        );
        Verdict {
            lag,
            stalled_for,
            stalled,
            idle: Some(idle),
            rejoin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lags(committed: &[(i64, i64)]) -> Vec<PartitionLag> {
        committed
            .iter()
            .enumerate()
            .map(|(p, &(committed, lag))| PartitionLag {
                partition: i32::try_from(p).unwrap(),
                committed,
                high: committed + lag,
                lag,
            })
            .collect()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_progressing_group_is_never_stalled() {
        let t0 = Instant::now();
        let mut watch = GroupWatch::new(10 * S, 20 * S);
        for i in 0..10i64 {
            let v = watch.observe(&lags(&[(i, 100), (0, 0)]), 0, t0 + 5 * S * (i as u32));
            assert_eq!((v.stalled_for, v.idle.is_none()), (Duration::ZERO, true));
        }
    }

    #[test]
    fn no_lag_is_no_stall_however_still() {
        let t0 = Instant::now();
        let mut watch = GroupWatch::new(S, S);
        watch.observe(&lags(&[(5, 0)]), 0, t0);
        let v = watch.observe(&lags(&[(5, 0)]), 0, t0 + 100 * S);
        assert_eq!(v.stalled_for, Duration::ZERO);
        assert!(v.idle.is_none());
    }

    #[test]
    fn an_idle_worker_in_a_stalled_group_is_not_ready_then_rejoins() {
        let t0 = Instant::now();
        let mut watch = GroupWatch::new(10 * S, 20 * S);
        let stuck = lags(&[(3, 50), (0, 7)]);
        watch.observe(&stuck, 0, t0);
        let early = watch.observe(&stuck, 0, t0 + 9 * S);
        assert!(early.idle.is_none(), "not stalled yet");
        let stalled = watch.observe(&stuck, 0, t0 + 10 * S);
        assert_eq!(stalled.lag, 57);
        assert!(stalled.idle.unwrap().contains("57 messages"));
        assert!(!stalled.rejoin);
        assert!(watch.observe(&stuck, 0, t0 + 30 * S).rejoin);
        // While it stays idle, each wait is twice the last, up to 8 times.
        assert!(!watch.observe(&stuck, 0, t0 + 69 * S).rejoin);
        assert!(watch.observe(&stuck, 0, t0 + 70 * S).rejoin);
        assert!(watch.observe(&stuck, 0, t0 + 150 * S).rejoin);
        assert!(watch.observe(&stuck, 0, t0 + 310 * S).rejoin);
        assert!(!watch.observe(&stuck, 0, t0 + 469 * S).rejoin);
        assert!(
            watch.observe(&stuck, 0, t0 + 470 * S).rejoin,
            "capped at 160 s"
        );
        // Holding partitions again resets the wait.
        watch.observe(&stuck, 2, t0 + 471 * S);
        watch.observe(&stuck, 0, t0 + 472 * S);
        assert!(watch.observe(&stuck, 0, t0 + 492 * S).rejoin);
    }

    #[test]
    fn one_stuck_partition_stalls_the_group_while_others_move() {
        let t0 = Instant::now();
        let mut watch = GroupWatch::new(10 * S, 20 * S);
        watch.observe(&lags(&[(0, 5), (0, 5)]), 0, t0);
        let v = watch.observe(&lags(&[(100, 5), (0, 5)]), 0, t0 + 10 * S);
        assert_eq!((v.stalled.clone(), v.stalled_for), (vec![1], 10 * S));
        assert!(v.idle.unwrap().contains("[1]"));
    }

    #[test]
    fn a_worker_holding_partitions_is_ready_even_when_the_group_stalls() {
        let t0 = Instant::now();
        let mut watch = GroupWatch::new(S, S);
        let stuck = lags(&[(0, 10)]);
        watch.observe(&stuck, 1, t0);
        let v = watch.observe(&stuck, 1, t0 + 5 * S);
        assert_eq!(v.stalled_for, 5 * S, "the stall is reported");
        assert!(v.idle.is_none() && !v.rejoin);
    }
}
