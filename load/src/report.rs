//! The end of a run: the k6-like text summary, the k6-shaped JSON summary
//! (`--summary-export`), the per-metric JSON used by both it and the time
//! series, and the judgement of whether the generator itself was the limit.

use std::fmt::Write as _;

use serde_json::{Map, Value as Json, json};

use crate::audit;
use crate::metrics::{Contains, Kind, Snapshot, Value};
use crate::thresholds::{Threshold, Verdict};

/// Trend statistics reported, as k6's `summaryTrendStats`.
pub const TREND_STATS: [&str; 7] = ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"];

/// Everything the summary shows.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// One line on the executor.
    pub executor: String,
    /// Where requests went.
    pub target: String,
    /// The run's metrics.
    pub snapshot: &'a Snapshot,
    /// Each threshold and its verdict.
    pub thresholds: Vec<(&'a Threshold, Verdict)>,
    /// The audit, if it ran.
    pub audit: Option<&'a audit::Report>,
    /// Why the generator was the limit, if it was.
    pub generator_bound: Vec<String>,
    /// Failed exchanges by reason.
    pub errors: &'a std::collections::BTreeMap<String, u64>,
    /// Set when the run was cut short, and why.
    pub cut_short: Option<String>,
}

/// Why the run cannot be trusted as a measure of the server: schedule lag
/// p99 above max(1 ms, 10% of the service time's p99), starts dropped, or
/// the generator's CPU near saturation.
pub fn generator_bound(snapshot: &Snapshot, open_model: bool) -> Vec<String> {
    let mut reasons = Vec::new();
    if open_model
        && let (Some(lag), Some(service)) = (
            snapshot.aggregate(crate::metrics::SCHEDULE_LAG, "p(99)"),
            snapshot.aggregate(crate::metrics::HTTP_REQ_SERVICE_DURATION, "p(99)"),
        )
    {
        let limit = (service * 0.1).max(1.0);
        if lag > limit {
            reasons.push(format!(
                "schedule lag p(99) {} is above {} (max of 1ms and 10% of service p(99) {})",
                time(lag),
                time(limit),
                time(service)
            ));
        }
    }
    let dropped = snapshot
        .aggregate(crate::metrics::DROPPED_ITERATIONS, "count")
        .unwrap_or(0.0);
    if dropped > 0.0 {
        reasons.push(format!(
            "{dropped} scheduled starts found no free VU (raise maxVUs, or the server is saturated)"
        ));
    }
    if let Some(cpu) = snapshot.aggregate(crate::metrics::GENERATOR_CPU, "value")
        && cpu >= 0.9
    {
        reasons.push(format!(
            "the generator used {:.0}% of all cores",
            cpu * 100.0
        ));
    }
    reasons
}

/// A metric's values as k6 reports them.
pub fn values(snapshot: &Snapshot, name: &str, value: &Value) -> Map<String, Json> {
    let mut out = Map::new();
    let keys: &[&str] = match value {
        Value::Counter(_) => &["count", "rate"],
        Value::Rate { .. } => &["rate", "passes", "fails"],
        Value::Gauge { .. } => &["value", "min", "max"],
        Value::Trend(_) => &TREND_STATS,
    };
    for key in keys {
        let number = snapshot.aggregate(name, key).unwrap_or(0.0);
        out.insert((*key).to_owned(), json!(number));
    }
    out
}

/// The k6-shaped JSON summary.
pub fn export(outcome: &Outcome<'_>, tty: (bool, bool)) -> Json {
    let snapshot = outcome.snapshot;
    let mut metrics = Map::new();
    for (name, value) in &snapshot.values {
        let Some(def) = crate::metrics::definition(name) else {
            continue;
        };
        let mut metric = Map::new();
        metric.insert("type".to_owned(), json!(def.kind.name()));
        let contains = match def.contains {
            Contains::Default => "default",
            Contains::Time => "time",
            Contains::Data => "data",
        };
        metric.insert("contains".to_owned(), json!(contains));
        metric.insert(
            "values".to_owned(),
            Json::Object(values(snapshot, name, value)),
        );
        let thresholds: Map<String, Json> = outcome
            .thresholds
            .iter()
            .filter(|(t, _)| t.metric == *name)
            .map(|(t, v)| (t.source.clone(), json!({ "ok": v.ok })))
            .collect();
        if !thresholds.is_empty() {
            metric.insert("thresholds".to_owned(), Json::Object(thresholds));
        }
        metrics.insert((*name).to_owned(), Json::Object(metric));
    }
    let (passes, fails) = match snapshot.values.get(crate::metrics::CHECKS) {
        Some(Value::Rate { passes, fails }) => (*passes, *fails),
        _ => (0, 0),
    };
    json!({
        "root_group": {
            "name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e", "groups": [],
            "checks": [{
                "name": "status is as expected", "path": "::status is as expected",
                "id": "eventpipe-status", "passes": passes, "fails": fails,
            }],
        },
        "options": { "summaryTrendStats": TREND_STATS, "summaryTimeUnit": "", "noColor": false },
        "state": {
            "isStdOutTTY": tty.0, "isStdErrTTY": tty.1,
            "testRunDurationMs": snapshot.duration.as_secs_f64() * 1000.0,
        },
        "metrics": metrics,
        "eventpipe": {
            "executor": outcome.executor,
            "target": outcome.target,
            "generatorBound": !outcome.generator_bound.is_empty(),
            "generatorBoundReasons": outcome.generator_bound,
            "cutShort": outcome.cut_short,
            "errors": outcome.errors,
            "audit": outcome.audit.map(|a| json!({
                "accepted": a.accepted, "stored": a.stored, "lost": a.lost,
                "duplicated": a.duplicated, "rejectedStored": a.rejected_stored,
                "outcomeUnknown": a.unknown, "outcomeUnknownStored": a.unknown_stored,
                "foreignRows": a.foreign, "drainedMs": a.drained.as_millis() as u64,
                "lostExamples": a.lost_examples.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })),
        },
    })
}

/// The text summary.
pub fn text(outcome: &Outcome<'_>) -> String {
    let s = outcome.snapshot;
    let mut out = String::new();
    let _ = writeln!(out, "\n  eventpipe-load · {}", outcome.executor);
    let _ = writeln!(out, "  target: {}", outcome.target);
    if !outcome.thresholds.is_empty() {
        let _ = writeln!(out, "\n  █ THRESHOLDS");
        let mut metric = "";
        let mut sorted: Vec<_> = outcome.thresholds.iter().collect();
        sorted.sort_by(|a, b| a.0.metric.cmp(&b.0.metric));
        for (threshold, verdict) in sorted {
            if threshold.metric != metric {
                metric = &threshold.metric;
                let _ = writeln!(out, "\n    {metric}");
            }
            let mark = if verdict.ok { "✓" } else { "✗" };
            let observed = match verdict.observed {
                Some(x) => format!("{}={}", threshold.aggregation, number(threshold, x)),
                None => "no data".to_owned(),
            };
            let _ = writeln!(out, "    {mark} '{}' {observed}", threshold.source);
        }
    }
    let _ = writeln!(out, "\n  █ TOTAL RESULTS\n");
    line(&mut out, s, crate::metrics::CHECKS);
    let groups: [(&str, &[&str]); 4] = [
        (
            "HTTP",
            &[
                "http_req_duration",
                "http_req_failed",
                "http_req_service_duration",
                "http_reqs",
            ],
        ),
        (
            "EXECUTION",
            &[
                "dropped_iterations",
                "interrupted_iterations",
                "iteration_schedule_lag",
                "iterations",
                "vus",
                "vus_max",
                "generator_cpu",
            ],
        ),
        ("NETWORK", &["data_received", "data_sent"]),
        (
            "EVENTS",
            &[
                "events_sent",
                "events_accepted",
                "events_rejected",
                "events_outcome_unknown",
            ],
        ),
    ];
    for (title, names) in groups {
        let _ = writeln!(out, "\n    {title}");
        for name in names {
            line(&mut out, s, name);
        }
    }
    if let Some(audit) = outcome.audit {
        let _ = writeln!(
            out,
            "\n    DELIVERY AUDIT (PostgreSQL; waited {} for accepted events)",
            crate::duration::format(audit.drained)
        );
        for name in [
            "events_lost",
            "events_duplicated",
            "events_rejected_stored",
            "event_visibility_latency",
        ] {
            line(&mut out, s, name);
        }
        let _ = writeln!(
            out,
            "    accepted {} distinct events, stored {}; outcome unknown {} ({} stored); rows the run never sent {}",
            audit.accepted, audit.stored, audit.unknown, audit.unknown_stored, audit.foreign
        );
        for id in &audit.lost_examples {
            let _ = writeln!(out, "    lost: {id}");
        }
    }
    if !outcome.errors.is_empty() {
        let _ = writeln!(out, "\n    ERRORS");
        for (reason, n) in outcome.errors {
            let _ = writeln!(out, "    {n:>10} × {reason}");
        }
    }
    let _ = writeln!(out);
    if outcome.generator_bound.is_empty() {
        let _ = writeln!(out, "  generator: kept the schedule");
    } else {
        let _ = writeln!(
            out,
            "  GENERATOR-BOUND: these figures measure the generator as much as the server:"
        );
        for reason in &outcome.generator_bound {
            let _ = writeln!(out, "    - {reason}");
        }
    }
    if let Some(reason) = &outcome.cut_short {
        let _ = writeln!(out, "  cut short: {reason}");
    }
    let _ = writeln!(
        out,
        "  ran {}, {} complete and {} interrupted iterations",
        crate::duration::format(s.duration),
        s.aggregate("iterations", "count").unwrap_or(0.0),
        s.aggregate("interrupted_iterations", "count")
            .unwrap_or(0.0),
    );
    out
}

fn line(out: &mut String, s: &Snapshot, name: &str) {
    let (Some(value), Some(def)) = (s.values.get(name), crate::metrics::definition(name)) else {
        return;
    };
    let get = |key: &str| s.aggregate(name, key).unwrap_or(0.0);
    let shown = match value {
        Value::Trend(_) => TREND_STATS
            .iter()
            .map(|k| format!("{k}={}", time(get(k))))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Rate { passes, fails } => {
            format!(
                "{:.2}% {passes} out of {}",
                get("rate") * 100.0,
                passes + fails
            )
        }
        Value::Counter(n) if def.contains == Contains::Data => {
            format!("{:<10} {}/s", bytes(*n), bytes(get("rate")))
        }
        Value::Counter(n) => format!("{n:<10} {:.1}/s", get("rate")),
        Value::Gauge { value, .. } if name == crate::metrics::GENERATOR_CPU => {
            format!("{:.1}% of all cores", value * 100.0)
        }
        Value::Gauge { value, min, max } => format!("{value:<10} min={min} max={max}"),
    };
    let dots = ".".repeat(31usize.saturating_sub(name.len()));
    let _ = writeln!(out, "    {name}{dots}: {shown}");
}

fn number(threshold: &Threshold, x: f64) -> String {
    match crate::metrics::definition(&threshold.metric).map(|d| (d.kind, d.contains)) {
        Some((Kind::Trend, Contains::Time)) => time(x),
        Some((Kind::Rate, _)) => format!("{:.2}%", x * 100.0),
        _ => format!("{x}"),
    }
}

/// Milliseconds as k6 prints them: `812µs`, `12.34ms`, `1.23s`.
pub fn time(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// Bytes with SI prefixes: `12 MB`.
pub fn bytes(n: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.0} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_like_k6() {
        assert_eq!(time(0.8126), "813µs");
        assert_eq!(time(12.345), "12.35ms");
        assert_eq!(time(1234.0), "1.23s");
        assert_eq!(bytes(12_345_678.0), "12 MB");
        assert_eq!(bytes(999.0), "999 B");
    }
}
