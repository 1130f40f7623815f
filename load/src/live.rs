//! What happens once a second while the test runs: drain the recorder, add
//! the second to the totals, write the second's points to the time series,
//! redraw the progress line, and stop the test if an `abortOnFail`
//! threshold fails.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::metrics::{self, Snapshot, Value};
use crate::schedule::Schedule;
use crate::stats::{Gauge, Interval, Recorder};
use crate::thresholds::Threshold;

/// The once-a-second bookkeeping.
pub struct Live {
    recorder: Arc<Recorder>,
    totals: Interval,
    vus: Gauge,
    vus_max: Gauge,
    ticks: u64,
    started: Instant,
    last_tick: Instant,
    cpu_at_start: Option<Duration>,
    timeseries: Option<BufWriter<File>>,
    progress: bool,
    expected: Option<Schedule>,
    aborts: Vec<Threshold>,
    stop: Arc<AtomicBool>,
    /// Set when an `abortOnFail` threshold stopped the test.
    pub aborted: Option<String>,
}

impl Live {
    /// Bookkeeping for a test that started at `started`. `expected` is the
    /// arrival-rate schedule, if any: its length and the rate it asks for
    /// show on the progress line.
    pub fn new(
        recorder: Arc<Recorder>,
        started: Instant,
        timeseries: Option<File>,
        progress: bool,
        expected: Option<Schedule>,
        thresholds: &[Threshold],
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            recorder,
            totals: Interval::default(),
            vus: Gauge::default(),
            vus_max: Gauge::default(),
            ticks: 0,
            started,
            last_tick: started,
            cpu_at_start: cpu_time(),
            timeseries: timeseries.map(BufWriter::new),
            progress: progress && std::io::stderr().is_terminal(),
            expected,
            aborts: thresholds
                .iter()
                .filter(|t| t.abort_on_fail)
                .cloned()
                .collect(),
            stop,
            aborted: None,
        }
    }

    /// One second's bookkeeping.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let second = self.recorder.drain();
        let busy = self.recorder.busy.load(Ordering::Relaxed).max(0) as f64;
        let allocated = self.recorder.allocated.load(Ordering::Relaxed) as f64;
        let first = self.ticks == 0;
        self.vus.read(busy, first);
        self.vus_max.read(allocated, first);
        self.ticks += 1;
        self.totals.add(&second);
        let span = now - self.last_tick;
        self.last_tick = now;
        if self.timeseries.is_some() {
            let snapshot = second.snapshot(span, self.vus, self.vus_max);
            self.write_points(&snapshot);
        }
        if self.progress {
            self.draw(&second, span);
        }
        if self.aborted.is_none() && !self.aborts.is_empty() {
            let snapshot = self.snapshot();
            let elapsed = now - self.started;
            if let Some(failed) = self
                .aborts
                .iter()
                .filter(|t| elapsed >= t.delay_abort_eval)
                .find(|t| !t.evaluate(&snapshot).ok)
            {
                self.aborted = Some(format!("threshold {failed} failed (abortOnFail)"));
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The totals so far, as metrics (with the generator's CPU share).
    pub fn snapshot(&self) -> Snapshot {
        let elapsed = self.last_tick - self.started;
        let mut snapshot = self.totals.snapshot(elapsed, self.vus, self.vus_max);
        if let (Some(start), Some(now)) = (self.cpu_at_start, cpu_time()) {
            let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
            let share = (now - start).as_secs_f64() / elapsed.as_secs_f64().max(1e-3) / cores;
            snapshot.values.insert(
                metrics::GENERATOR_CPU,
                Value::Gauge {
                    value: share,
                    min: share,
                    max: share,
                },
            );
        }
        snapshot
    }

    /// Ends the bookkeeping: the last partial second, the progress line
    /// cleared, the time series flushed.
    pub fn finish(&mut self) -> Snapshot {
        self.tick();
        if self.progress {
            eprint!("\r{:100}\r", "");
        }
        if let Some(file) = &mut self.timeseries {
            let _ = file.flush();
        }
        self.snapshot()
    }

    fn write_points(&mut self, snapshot: &Snapshot) {
        let Some(file) = &mut self.timeseries else {
            return;
        };
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for (name, value) in &snapshot.values {
            let empty = match value {
                Value::Counter(n) => *n == 0.0,
                Value::Rate { passes, fails } => passes + fails == 0,
                Value::Trend(h) => h.is_empty(),
                Value::Gauge { .. } => false,
            };
            if empty {
                continue;
            }
            let kind = metrics::definition(name).map_or("", |d| d.kind.name());
            let point = json!({
                "time": time,
                "metric": name,
                "type": kind,
                "values": crate::report::values(snapshot, name, value),
            });
            let _ = writeln!(file, "{point}");
        }
    }

    fn draw(&self, second: &Interval, span: Duration) {
        let elapsed = self.last_tick - self.started;
        let per_second = |n: u64| n as f64 / span.as_secs_f64().max(1e-3);
        let (length, target) = match &self.expected {
            Some(schedule) => (
                format!("/{}", crate::duration::format(schedule.duration())),
                format!(" (target {:.0})", schedule.rate_at(elapsed)),
            ),
            None => (String::new(), String::new()),
        };
        eprint!(
            "\r  running {}{length}  req/s {:.0}{target}  events/s {:.0}  failed {}  dropped {}  vus {}/{}   ",
            crate::duration::format(Duration::from_secs(elapsed.as_secs())),
            per_second(second.requests),
            per_second(second.events_sent),
            self.totals.failed,
            self.totals.dropped,
            self.vus.value,
            self.vus_max.value,
        );
    }
}

/// The process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from the state field (3).
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform Rust targets.
    Some(Duration::from_millis((user + system) * 10))
}
