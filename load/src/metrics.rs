//! The metrics a run reports, named and typed as k6 names and types them
//! (counter, rate, gauge, trend), plus eventpipe's own: events by outcome and
//! the delivery audit. Trends hold HDR histograms in microseconds and report
//! milliseconds, as k6 does.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How a metric aggregates, as in k6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A running total; `count` and `rate` (per second).
    Counter,
    /// A share of non-zero samples; `rate`, `passes`, `fails`.
    Rate,
    /// The last value seen; `value`, `min`, `max`.
    Gauge,
    /// A distribution; `avg`, `min`, `med`, `max`, `p(N)`.
    Trend,
}

impl Kind {
    /// The name k6 gives the kind in its JSON summary.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Rate => "rate",
            Kind::Gauge => "gauge",
            Kind::Trend => "trend",
        }
    }
}

/// What a metric's numbers are: k6's `contains`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contains {
    /// Plain numbers.
    Default,
    /// Milliseconds.
    Time,
    /// Bytes.
    Data,
}

/// A metric the tool knows: thresholds may name only these.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    /// The metric's name.
    pub name: &'static str,
    /// How it aggregates.
    pub kind: Kind,
    /// What its numbers are.
    pub contains: Contains,
    /// Shown in `--help` and the README.
    pub help: &'static str,
    /// Only present when the delivery audit ran.
    pub needs_audit: bool,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    contains: Contains,
    help: &'static str,
) -> Definition {
    Definition {
        name,
        kind,
        contains,
        help,
        needs_audit: false,
    }
}

const fn audited(
    name: &'static str,
    kind: Kind,
    contains: Contains,
    help: &'static str,
) -> Definition {
    Definition {
        needs_audit: true,
        ..metric(name, kind, contains, help)
    }
}

/// Requests that got an answer or failed.
pub const HTTP_REQS: &str = "http_reqs";
/// Share of requests whose status was not the one expected.
pub const HTTP_REQ_FAILED: &str = "http_req_failed";
/// Latency from the iteration's scheduled start to the end of the response.
pub const HTTP_REQ_DURATION: &str = "http_req_duration";
/// From the moment the request was sent to the end of the response.
pub const HTTP_REQ_SERVICE_DURATION: &str = "http_req_service_duration";
/// How late the generator sent each request after its scheduled start.
pub const SCHEDULE_LAG: &str = "iteration_schedule_lag";
/// Iterations completed (one request each).
pub const ITERATIONS: &str = "iterations";
/// Scheduled starts that found no free VU.
pub const DROPPED_ITERATIONS: &str = "dropped_iterations";
/// Iterations cut off by the end of the graceful stop or an interruption.
pub const INTERRUPTED_ITERATIONS: &str = "interrupted_iterations";
/// Share of responses that passed their status check.
pub const CHECKS: &str = "checks";
/// VUs busy with an iteration.
pub const VUS: &str = "vus";
/// VUs allocated.
pub const VUS_MAX: &str = "vus_max";
/// Bytes sent.
pub const DATA_SENT: &str = "data_sent";
/// Bytes received.
pub const DATA_RECEIVED: &str = "data_received";
/// Events put in requests (duplicates included).
pub const EVENTS_SENT: &str = "events_sent";
/// Events in requests the API accepted.
pub const EVENTS_ACCEPTED: &str = "events_accepted";
/// Events in requests the API refused (4xx).
pub const EVENTS_REJECTED: &str = "events_rejected";
/// Events whose request ended without a definite answer (5xx, timeout).
pub const EVENTS_OUTCOME_UNKNOWN: &str = "events_outcome_unknown";
/// Accepted events not in PostgreSQL after the drain.
pub const EVENTS_LOST: &str = "events_lost";
/// Events stored more than once (each extra row counts).
pub const EVENTS_DUPLICATED: &str = "events_duplicated";
/// Events only ever rejected that were stored anyway.
pub const EVENTS_REJECTED_STORED: &str = "events_rejected_stored";
/// From the 202 to the row being readable in PostgreSQL, sampled.
pub const EVENT_VISIBILITY_LATENCY: &str = "event_visibility_latency";
/// Share of the machine's cores the generator process used.
pub const GENERATOR_CPU: &str = "generator_cpu";

/// Every metric, in the order the summary lists them.
pub const CATALOG: &[Definition] = &[
    metric(
        HTTP_REQ_DURATION,
        Kind::Trend,
        Contains::Time,
        "latency from the scheduled start to the response's end (coordinated-omission corrected)",
    ),
    metric(
        HTTP_REQ_FAILED,
        Kind::Rate,
        Contains::Default,
        "share of requests whose status was not the expected one",
    ),
    metric(
        HTTP_REQ_SERVICE_DURATION,
        Kind::Trend,
        Contains::Time,
        "from sending the request to the response's end (k6's http_req_duration)",
    ),
    metric(HTTP_REQS, Kind::Counter, Contains::Default, "requests made"),
    metric(
        CHECKS,
        Kind::Rate,
        Contains::Default,
        "share of responses with the expected status",
    ),
    metric(
        DROPPED_ITERATIONS,
        Kind::Counter,
        Contains::Default,
        "scheduled starts that found no free VU",
    ),
    metric(
        INTERRUPTED_ITERATIONS,
        Kind::Counter,
        Contains::Default,
        "iterations cut off by the stop",
    ),
    metric(
        SCHEDULE_LAG,
        Kind::Trend,
        Contains::Time,
        "how late requests left after their scheduled start",
    ),
    metric(
        ITERATIONS,
        Kind::Counter,
        Contains::Default,
        "iterations completed",
    ),
    metric(VUS, Kind::Gauge, Contains::Default, "VUs busy"),
    metric(VUS_MAX, Kind::Gauge, Contains::Default, "VUs allocated"),
    metric(
        GENERATOR_CPU,
        Kind::Gauge,
        Contains::Default,
        "share of all cores the generator used",
    ),
    metric(
        DATA_RECEIVED,
        Kind::Counter,
        Contains::Data,
        "bytes received",
    ),
    metric(DATA_SENT, Kind::Counter, Contains::Data, "bytes sent"),
    metric(
        EVENTS_SENT,
        Kind::Counter,
        Contains::Default,
        "events sent, retried duplicates included",
    ),
    metric(
        EVENTS_ACCEPTED,
        Kind::Counter,
        Contains::Default,
        "events in accepted requests",
    ),
    metric(
        EVENTS_REJECTED,
        Kind::Counter,
        Contains::Default,
        "events in refused (4xx) requests",
    ),
    metric(
        EVENTS_OUTCOME_UNKNOWN,
        Kind::Counter,
        Contains::Default,
        "events in requests without a definite answer",
    ),
    audited(
        EVENTS_LOST,
        Kind::Counter,
        Contains::Default,
        "accepted events missing from PostgreSQL",
    ),
    audited(
        EVENTS_DUPLICATED,
        Kind::Counter,
        Contains::Default,
        "extra rows of events stored more than once",
    ),
    audited(
        EVENTS_REJECTED_STORED,
        Kind::Counter,
        Contains::Default,
        "rejected events found stored",
    ),
    audited(
        EVENT_VISIBILITY_LATENCY,
        Kind::Trend,
        Contains::Time,
        "202 to row readable in PostgreSQL, sampled",
    ),
];

/// The definition of `name`, if the tool knows it.
pub fn definition(name: &str) -> Option<&'static Definition> {
    CATALOG.iter().find(|d| d.name == name)
}

/// A new, empty latency histogram (microseconds, 3 significant digits,
/// growing as needed).
pub fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new(3).unwrap_or_else(|_| unreachable_histogram());
    h.auto(true);
    h
}

#[cold]
fn unreachable_histogram() -> Histogram<u64> {
    // `Histogram::new(3)` only fails for more than 5 significant digits.
    Histogram::new_with_bounds(1, u64::MAX / 2, 2).unwrap_or_else(|_| std::process::abort())
}

/// A metric's final value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A counter: its total.
    Counter(f64),
    /// A rate: non-zero and zero samples.
    Rate {
        /// Samples that passed (non-zero).
        passes: u64,
        /// Samples that failed (zero).
        fails: u64,
    },
    /// A gauge: last, smallest and largest values.
    Gauge {
        /// The last value.
        value: f64,
        /// The smallest value.
        min: f64,
        /// The largest value.
        max: f64,
    },
    /// A trend: its samples, in microseconds.
    Trend(Histogram<u64>),
}

/// Every metric of a run, aggregated over `duration`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Values by metric name.
    pub values: BTreeMap<&'static str, Value>,
    /// The run's length (for counters' rates).
    pub duration: Duration,
}

impl Snapshot {
    /// One aggregation of one metric, in the metric's unit (ms for time):
    /// `count`, `rate`, `value`, `min`, `max`, `avg`, `med`, `p(N)`,
    /// `passes`, `fails`. `None` when the metric has no data.
    pub fn aggregate(&self, name: &str, aggregation: &str) -> Option<f64> {
        let seconds = self.duration.as_secs_f64().max(1e-9);
        match (self.values.get(name)?, aggregation) {
            (Value::Counter(n), "count") => Some(*n),
            (Value::Counter(n), "rate") => Some(n / seconds),
            (Value::Rate { passes, fails }, "rate") => {
                let total = passes + fails;
                (total > 0).then(|| *passes as f64 / total as f64)
            }
            (Value::Rate { passes, .. }, "passes") => Some(*passes as f64),
            (Value::Rate { fails, .. }, "fails") => Some(*fails as f64),
            (Value::Gauge { value, .. }, "value") => Some(*value),
            (Value::Gauge { min, .. }, "min") => Some(*min),
            (Value::Gauge { max, .. }, "max") => Some(*max),
            (Value::Trend(h), aggregation) if !h.is_empty() => {
                let ms = |us: u64| us as f64 / 1000.0;
                match aggregation {
                    "avg" => Some(h.mean() / 1000.0),
                    "min" => Some(ms(h.min())),
                    "max" => Some(ms(h.max())),
                    "med" => Some(ms(h.value_at_quantile(0.5))),
                    "count" => Some(h.len() as f64),
                    p => percentile(p).map(|q| ms(h.value_at_quantile(q / 100.0))),
                }
            }
            _ => None,
        }
    }
}

/// `p(95)` → 95.0, `p(99.9)` → 99.9.
pub fn percentile(aggregation: &str) -> Option<f64> {
    let inner = aggregation.strip_prefix("p(")?.strip_suffix(')')?;
    let p: f64 = inner.trim().parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p)
}
