//! Thresholds in k6's syntax: `p(95)<200` on `http_req_duration`,
//! `rate<0.01` on `http_req_failed`, `count==0` on `events_lost`. Parsed
//! when the configuration is read (a bad one is an invalid configuration,
//! exit 104) and evaluated against a [`Snapshot`] during the run (for
//! `abortOnFail`) and at its end.

use std::fmt;
use std::time::Duration;

use crate::metrics::{Kind, Snapshot, definition, percentile};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` or `===`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

/// One threshold on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric it reads.
    pub metric: String,
    /// The expression as written (`p(95)<200`): k6's key for it.
    pub source: String,
    /// The aggregation it compares (`p(95)`, `rate`, `count`...).
    pub aggregation: String,
    /// The operator.
    pub op: Op,
    /// The right-hand side.
    pub value: f64,
    /// Stop the test as soon as it fails.
    pub abort_on_fail: bool,
    /// How long into the test before `abort_on_fail` is looked at.
    pub delay_abort_eval: Duration,
}

/// Why a threshold could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold {metric:?}: {expression:?}: {reason}")]
pub struct ThresholdError {
    metric: String,
    expression: String,
    reason: String,
}

/// The outcome of one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether it held.
    pub ok: bool,
    /// The aggregated value it compared, if the metric had data.
    pub observed: Option<f64>,
}

impl Threshold {
    /// Parses `expression` (`p(95) < 200`) for `metric`, checking that the
    /// metric exists and the aggregation suits its kind.
    pub fn parse(metric: &str, expression: &str) -> Result<Self, ThresholdError> {
        let fail = |reason: String| ThresholdError {
            metric: metric.to_owned(),
            expression: expression.to_owned(),
            reason,
        };
        let definition = definition(metric).ok_or_else(|| {
            fail("no such metric (see `eventpipe-load --help` for the list)".to_owned())
        })?;
        let text = expression.trim();
        let (at, op, op_len) = find_operator(text).ok_or_else(|| {
            fail("no comparison operator; write e.g. p(95)<200 or rate<0.01".to_owned())
        })?;
        let aggregation = text[..at].trim().replace(' ', "");
        let value_text = text[at + op_len..].trim();
        let value: f64 = value_text
            .parse()
            .map_err(|_| fail(format!("{value_text:?} is not a number")))?;
        let allowed: &[&str] = match definition.kind {
            Kind::Counter => &["count", "rate"],
            Kind::Rate => &["rate"],
            Kind::Gauge => &["value"],
            Kind::Trend => &["avg", "min", "max", "med"],
        };
        let is_percentile = definition.kind == Kind::Trend && percentile(&aggregation).is_some();
        if !(allowed.contains(&aggregation.as_str()) || is_percentile) {
            let extra = if definition.kind == Kind::Trend {
                ", p(N)"
            } else {
                ""
            };
            return Err(fail(format!(
                "{aggregation:?} does not apply to a {} metric (use {}{extra})",
                definition.kind.name(),
                allowed.join(", ")
            )));
        }
        Ok(Self {
            metric: metric.to_owned(),
            source: expression.to_owned(),
            aggregation,
            op,
            value,
            abort_on_fail: false,
            delay_abort_eval: Duration::ZERO,
        })
    }

    /// Parses the command-line form `METRIC: EXPRESSION[, abortOnFail]`.
    pub fn parse_flag(flag: &str) -> Result<Self, ThresholdError> {
        let (metric, rest) = flag.split_once(':').ok_or_else(|| ThresholdError {
            metric: String::new(),
            expression: flag.to_owned(),
            reason: "write METRIC: EXPRESSION, e.g. 'http_req_duration: p(95)<200'".to_owned(),
        })?;
        let (expression, abort) = match rest.rsplit_once(',') {
            Some((expression, flag)) if flag.trim() == "abortOnFail" => (expression, true),
            _ => (rest, false),
        };
        let mut threshold = Self::parse(metric.trim(), expression.trim())?;
        threshold.abort_on_fail = abort;
        Ok(threshold)
    }

    /// Evaluates against `snapshot`. A metric without data fails: a
    /// threshold that cannot be checked has not been met.
    pub fn evaluate(&self, snapshot: &Snapshot) -> Verdict {
        let observed = snapshot.aggregate(&self.metric, &self.aggregation);
        Verdict {
            ok: observed.is_some_and(|x| self.op.holds(x, self.value)),
            observed,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.metric, self.source)
    }
}

/// The leftmost operator in `text`: (byte offset, operator, its length).
fn find_operator(text: &str) -> Option<(usize, Op, usize)> {
    let at = text.find(['<', '>', '=', '!'])?;
    let rest = &text[at..];
    let (op, len) = if rest.starts_with("===") {
        (Op::Eq, 3)
    } else if rest.starts_with("==") {
        (Op::Eq, 2)
    } else if rest.starts_with("!=") {
        (Op::Ne, 2)
    } else if rest.starts_with("<=") {
        (Op::Le, 2)
    } else if rest.starts_with(">=") {
        (Op::Ge, 2)
    } else if rest.starts_with('<') {
        (Op::Lt, 1)
    } else if rest.starts_with('>') {
        (Op::Gt, 1)
    } else {
        return None;
    };
    Some((at, op, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{self, Value};

    fn snapshot() -> Snapshot {
        let mut latencies = metrics::histogram();
        for ms in 1..=100u64 {
            latencies.record(ms * 1000).unwrap();
        }
        let mut s = Snapshot {
            duration: Duration::from_secs(10),
            ..Snapshot::default()
        };
        s.values
            .insert(metrics::HTTP_REQ_DURATION, Value::Trend(latencies));
        s.values.insert(metrics::HTTP_REQS, Value::Counter(1000.0));
        s.values.insert(
            metrics::HTTP_REQ_FAILED,
            Value::Rate {
                passes: 5,
                fails: 995,
            },
        );
        s.values.insert(metrics::EVENTS_LOST, Value::Counter(0.0));
        s.values.insert(
            metrics::VUS,
            Value::Gauge {
                value: 3.0,
                min: 1.0,
                max: 8.0,
            },
        );
        s
    }

    fn holds(metric: &str, expression: &str) -> bool {
        Threshold::parse(metric, expression)
            .unwrap()
            .evaluate(&snapshot())
            .ok
    }

    #[test]
    fn each_operator() {
        assert!(holds("http_reqs", "count<1001"));
        assert!(!holds("http_reqs", "count<1000"));
        assert!(holds("http_reqs", "count<=1000"));
        assert!(!holds("http_reqs", "count<=999"));
        assert!(holds("http_reqs", "count>999"));
        assert!(!holds("http_reqs", "count>1000"));
        assert!(holds("http_reqs", "count>=1000"));
        assert!(!holds("http_reqs", "count>=1001"));
        assert!(holds("events_lost", "count==0"));
        assert!(holds("events_lost", "count===0"));
        assert!(!holds("events_lost", "count!=0"));
    }

    #[test]
    fn each_aggregation() {
        assert!(holds("http_req_duration", "avg<51") && !holds("http_req_duration", "avg<50"));
        assert!(holds("http_req_duration", "min==1"));
        // HDR keeps 3 significant digits: 100 ms reads back within 0.1%.
        assert!(holds("http_req_duration", "max>=100") && holds("http_req_duration", "max<100.1"));
        assert!(holds("http_req_duration", "med>=50") && holds("http_req_duration", "med<=51"));
        assert!(
            holds("http_req_duration", "p(95) < 96") && !holds("http_req_duration", "p(95)<95")
        );
        assert!(holds("http_req_duration", "p(99.9)<=100.1"));
        assert!(holds("http_reqs", "rate==100"));
        assert!(holds("http_req_failed", "rate<0.01") && !holds("http_req_failed", "rate<0.005"));
        assert!(holds("vus", "value==3"));
    }

    #[test]
    fn a_metric_without_data_fails() {
        let t = Threshold::parse("events_duplicated", "count==0").unwrap();
        assert_eq!(
            t.evaluate(&snapshot()),
            Verdict {
                ok: false,
                observed: None
            }
        );
    }

    #[test]
    fn bad_syntax_is_an_error_naming_the_problem() {
        let cases = [
            ("http_req_duration", "p95<200", "does not apply"),
            ("http_req_duration", "p(95)200", "no comparison operator"),
            ("http_req_duration", "p(95)<fast", "not a number"),
            ("http_req_duration", "p(101)<200", "does not apply"),
            (
                "http_req_failed",
                "count<1",
                "does not apply to a rate metric",
            ),
            ("http_reqs", "avg<1", "does not apply to a counter metric"),
            ("no_such_metric", "count<1", "no such metric"),
            ("http_reqs", "count=>1", "no comparison operator"),
        ];
        for (metric, expression, reason) in cases {
            let error = Threshold::parse(metric, expression)
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{metric} {expression}: {error}");
        }
    }

    #[test]
    fn the_flag_form_carries_abort_on_fail() {
        let t = Threshold::parse_flag("http_req_failed: rate<0.01, abortOnFail").unwrap();
        assert!(t.abort_on_fail);
        assert_eq!(t.source, "rate<0.01");
        let t = Threshold::parse_flag("http_req_duration: p(95)<200").unwrap();
        assert!(!t.abort_on_fail);
        assert!(Threshold::parse_flag("p(95)<200").is_err());
    }
}
