//! Recording samples while the test runs. VUs record into shards (a VU
//! always uses the same shard, so locks are rarely contended); once a second
//! the collector drains every shard into one [`Interval`], which becomes a
//! time-series point and is added to the run's totals.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::metrics::{self, Snapshot, Value};

/// What one request did.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From the scheduled start to the response's end.
    pub latency: Duration,
    /// From sending to the response's end.
    pub service: Duration,
    /// From the scheduled start to sending.
    pub lag: Duration,
    /// Whether the status was the expected one.
    pub ok: bool,
    /// Events in the request.
    pub events: u32,
    /// What the answer means for them (a ledger flag).
    pub outcome: u8,
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
}

/// Everything recorded over some span of the run.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Requests made.
    pub requests: u64,
    /// Requests with an unexpected status.
    pub failed: u64,
    /// Iterations that ran to their end.
    pub iterations: u64,
    /// Scheduled starts with no free VU.
    pub dropped: u64,
    /// Iterations cut off by the stop.
    pub interrupted: u64,
    /// Events sent.
    pub events_sent: u64,
    /// Events accepted.
    pub events_accepted: u64,
    /// Events refused.
    pub events_rejected: u64,
    /// Events without a definite answer.
    pub events_unknown: u64,
    /// Bytes sent.
    pub data_sent: u64,
    /// Bytes received.
    pub data_received: u64,
    /// Latency from the scheduled start, µs.
    pub latency: Histogram<u64>,
    /// Service time, µs.
    pub service: Histogram<u64>,
    /// Schedule lag, µs.
    pub lag: Histogram<u64>,
    /// Accepted → readable in PostgreSQL, µs.
    pub visibility: Histogram<u64>,
}

impl Default for Interval {
    fn default() -> Self {
        Self {
            requests: 0,
            failed: 0,
            iterations: 0,
            dropped: 0,
            interrupted: 0,
            events_sent: 0,
            events_accepted: 0,
            events_rejected: 0,
            events_unknown: 0,
            data_sent: 0,
            data_received: 0,
            latency: metrics::histogram(),
            service: metrics::histogram(),
            lag: metrics::histogram(),
            visibility: metrics::histogram(),
        }
    }
}

/// Records `d` in microseconds (at least 1: HDR's lowest value). The
/// histograms grow as needed; `saturating_record` would not.
fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros().min(u128::from(u64::MAX / 4)) as u64).max(1);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

impl Interval {
    fn record(&mut self, s: &Sample) {
        self.requests += 1;
        self.iterations += 1;
        self.failed += u64::from(!s.ok);
        self.events_sent += u64::from(s.events);
        let events = u64::from(s.events);
        match s.outcome {
            crate::ledger::ACCEPTED => self.events_accepted += events,
            crate::ledger::REJECTED => self.events_rejected += events,
            _ => self.events_unknown += events,
        }
        self.data_sent += s.sent;
        self.data_received += s.received;
        record(&mut self.latency, s.latency);
        record(&mut self.service, s.service);
        record(&mut self.lag, s.lag);
    }

    /// Adds `other` into this one.
    pub fn add(&mut self, other: &Interval) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.iterations += other.iterations;
        self.dropped += other.dropped;
        self.interrupted += other.interrupted;
        self.events_sent += other.events_sent;
        self.events_accepted += other.events_accepted;
        self.events_rejected += other.events_rejected;
        self.events_unknown += other.events_unknown;
        self.data_sent += other.data_sent;
        self.data_received += other.data_received;
        // Auto-resizing histograms accept any other histogram.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
        let _ = self.visibility.add(&other.visibility);
    }

    /// The interval as metrics, over `duration`, with the VU gauges.
    pub fn snapshot(&self, duration: Duration, vus: Gauge, vus_max: Gauge) -> Snapshot {
        let mut s = Snapshot {
            duration,
            ..Snapshot::default()
        };
        let mut counter = |name, n: u64| {
            s.values.insert(name, Value::Counter(n as f64));
        };
        counter(metrics::HTTP_REQS, self.requests);
        counter(metrics::ITERATIONS, self.iterations);
        counter(metrics::DROPPED_ITERATIONS, self.dropped);
        counter(metrics::INTERRUPTED_ITERATIONS, self.interrupted);
        counter(metrics::EVENTS_SENT, self.events_sent);
        counter(metrics::EVENTS_ACCEPTED, self.events_accepted);
        counter(metrics::EVENTS_REJECTED, self.events_rejected);
        counter(metrics::EVENTS_OUTCOME_UNKNOWN, self.events_unknown);
        counter(metrics::DATA_SENT, self.data_sent);
        counter(metrics::DATA_RECEIVED, self.data_received);
        let passed = self.requests - self.failed;
        s.values.insert(
            metrics::HTTP_REQ_FAILED,
            Value::Rate {
                passes: self.failed,
                fails: passed,
            },
        );
        s.values.insert(
            metrics::CHECKS,
            Value::Rate {
                passes: passed,
                fails: self.failed,
            },
        );
        for (name, h) in [
            (metrics::HTTP_REQ_DURATION, &self.latency),
            (metrics::HTTP_REQ_SERVICE_DURATION, &self.service),
            (metrics::SCHEDULE_LAG, &self.lag),
            (metrics::EVENT_VISIBILITY_LATENCY, &self.visibility),
        ] {
            if !h.is_empty() {
                s.values.insert(name, Value::Trend(h.clone()));
            }
        }
        for (name, g) in [(metrics::VUS, vus), (metrics::VUS_MAX, vus_max)] {
            s.values.insert(
                name,
                Value::Gauge {
                    value: g.value,
                    min: g.min,
                    max: g.max,
                },
            );
        }
        s
    }
}

/// A gauge's last, smallest and largest readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauge {
    /// Last reading.
    pub value: f64,
    /// Smallest reading.
    pub min: f64,
    /// Largest reading.
    pub max: f64,
}

impl Gauge {
    /// Adds a reading.
    pub fn read(&mut self, value: f64, first: bool) {
        self.value = value;
        self.min = if first { value } else { self.min.min(value) };
        self.max = if first { value } else { self.max.max(value) };
    }
}

/// Where VUs record while the test runs.
#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<Interval>>,
    dropped: AtomicU64,
    interrupted: AtomicU64,
    /// VUs in an iteration now.
    pub busy: AtomicI64,
    /// VUs allocated.
    pub allocated: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Recorder {
    /// A recorder with `shards` shards.
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            dropped: AtomicU64::new(0),
            interrupted: AtomicU64::new(0),
            busy: AtomicI64::new(0),
            allocated: AtomicU64::new(0),
            errors: Mutex::default(),
        }
    }

    fn shard(&self, vu: usize) -> std::sync::MutexGuard<'_, Interval> {
        let shard = &self.shards[vu % self.shards.len()];
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one request of VU `vu`.
    pub fn record(&self, vu: usize, sample: &Sample) {
        self.shard(vu).record(sample);
    }

    /// Records an accepted event becoming readable after `latency`.
    pub fn visible(&self, latency: Duration) {
        record(&mut self.shard(0).visibility, latency);
    }

    /// Counts a request that failed without an answer, by its reason.
    pub fn error(&self, reason: &str) {
        let mut errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match errors.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                errors.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Requests that failed without an answer, by reason.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Counts a scheduled start that found no free VU.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an iteration cut off by the stop.
    pub fn interrupted(&self) {
        self.interrupted.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything recorded since the last drain.
    pub fn drain(&self) -> Interval {
        let mut all = Interval {
            dropped: self.dropped.swap(0, Ordering::Relaxed),
            interrupted: self.interrupted.swap(0, Ordering::Relaxed),
            ..Interval::default()
        };
        for shard in &self.shards {
            let taken = std::mem::take(
                &mut *shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            all.add(&taken);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_keep_values_from_microseconds_to_minutes() {
        let mut h = metrics::histogram();
        for d in [
            Duration::from_micros(3),
            Duration::from_millis(250),
            Duration::from_secs(90),
        ] {
            record(&mut h, d);
        }
        assert_eq!(h.min(), 3);
        assert!((h.value_at_quantile(0.5) as f64 - 250_000.0).abs() < 250.0);
        assert!((h.max() as f64 - 90_000_000.0).abs() < 90_000.0);
    }
}
