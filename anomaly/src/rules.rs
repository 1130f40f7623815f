//! Anomaly rules: what a rules file (TOML) may say, checked into [`Rule`]s.
//! A missing or invalid file is a start-up error naming the file, the line
//! and the rule; no file means [`DEFAULT_RULES`].

use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;
use serde_json::Value;

use super::payload::Payload;

/// The rules used when `WORKER_RULES_FILE` is not set.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// How serious an anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a look soon.
    Medium,
    /// Worth a look now.
    High,
}

impl Severity {
    /// The name stored and published.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// A comparison a `when` filter makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Equal (any JSON value).
    Equals(Value),
    /// ≥ a number.
    AtLeast(f64),
    /// > a number.
    Above(f64),
    /// < a number.
    Below(f64),
    /// ≤ a number.
    AtMost(f64),
}

/// Which events of the rule's type match: a test on one payload field.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    /// The payload field.
    pub field: String,
    /// The test.
    pub test: Test,
}

impl When {
    /// Whether `payload` passes (a missing field does not).
    pub fn matches(&self, payload: &Payload<'_>) -> bool {
        let Some(value) = payload.get(&self.field) else {
            return false;
        };
        let value = &value;
        match &self.test {
            Test::Equals(expected) => value == expected,
            Test::AtLeast(x) => value.as_f64().is_some_and(|v| v >= *x),
            Test::Above(x) => value.as_f64().is_some_and(|v| v > *x),
            Test::Below(x) => value.as_f64().is_some_and(|v| v < *x),
            Test::AtMost(x) => value.as_f64().is_some_and(|v| v <= *x),
        }
    }
}

/// What a rule looks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A payload number past a limit.
    Threshold {
        /// The field.
        field: String,
        /// Fires above this.
        above: Option<f64>,
        /// Fires below this.
        below: Option<f64>,
    },
    /// Matching events in a sliding window reach `at_least`.
    Count {
        /// The window.
        window: Duration,
        /// Fires when the count reaches this.
        at_least: u32,
    },
    /// `count` of the type's events in a row match (within `within`).
    Consecutive {
        /// The run length that fires.
        count: u32,
        /// Only events this recent count toward the run.
        within: Duration,
    },
    /// A value the user has not had within `history`.
    NewValue {
        /// The field.
        field: String,
        /// How far back values count as known.
        history: Duration,
    },
    /// The value moved by at least `by` since the previous one, if that
    /// was within `within`.
    Jump {
        /// The field.
        field: String,
        /// The smallest move that fires.
        by: f64,
        /// How recent the previous value must be.
        within: Duration,
    },
    /// The event's time of day (UTC) is in `[from, to)`, wrapping midnight
    /// when `from` > `to`.
    TimeOfDay {
        /// Start.
        from: NaiveTime,
        /// End (excluded).
        to: NaiveTime,
    },
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name, stored with each anomaly.
    pub name: String,
    /// How serious its anomalies are.
    pub severity: Severity,
    /// Human-readable, stored with each anomaly.
    pub description: String,
    /// The event type it reads; `None` reads every type.
    pub event_type: Option<String>,
    /// Which events match; `None` matches all of the type.
    pub when: Option<When>,
    /// What it looks for.
    pub kind: Kind,
}

impl Rule {
    /// How far back (event time) this rule looks; zero for stateless ones.
    pub fn lookback(&self) -> Duration {
        match &self.kind {
            Kind::Count { window, .. } => *window,
            Kind::Consecutive { within, .. } | Kind::Jump { within, .. } => *within,
            Kind::NewValue { history, .. } => *history,
            Kind::Threshold { .. } | Kind::TimeOfDay { .. } => Duration::ZERO,
        }
    }

    /// Whether `event_type` is one this rule reads.
    pub fn reads(&self, event_type: &str) -> bool {
        self.event_type.as_deref().is_none_or(|t| t == event_type)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rules: Vec<toml::Spanned<Spec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenSpec {
    field: String,
    equals: Option<Value>,
    at_least: Option<f64>,
    above: Option<f64>,
    below: Option<f64>,
    at_most: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    severity: Severity,
    description: String,
    #[serde(rename = "type")]
    event_type: Option<String>,
    kind: String,
    when: Option<WhenSpec>,
    field: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    window_secs: Option<u64>,
    at_least: Option<u32>,
    count: Option<u32>,
    within_secs: Option<u64>,
    history_secs: Option<u64>,
    by: Option<f64>,
    from: Option<String>,
    to: Option<String>,
}

/// Reads rules from TOML `text`; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Rule>, String> {
    let file: File = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    let mut rules: Vec<Rule> = Vec::new();
    for spanned in file.rules {
        let line = text[..spanned.span().start].matches('\n').count() + 1;
        let spec = spanned.into_inner();
        let name = spec.name.clone();
        let rule = check(spec).map_err(|e| format!("{origin}: line {line}: rule {name:?}: {e}"))?;
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(format!(
                "{origin}: line {line}: rule {name:?} is defined twice"
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn positive_secs(value: Option<u64>, key: &str) -> Result<Duration, String> {
    match value {
        Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        Some(_) => Err(format!("{key} must be more than 0")),
        None => Err(format!("needs {key}")),
    }
}

fn time_of_day(value: Option<&str>, key: &str) -> Result<NaiveTime, String> {
    let text = value.ok_or_else(|| format!("needs {key} (\"HH:MM\", UTC)"))?;
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("{key} must be \"HH:MM\" (UTC), got {text:?}"))
}

fn check(spec: Spec) -> Result<Rule, String> {
    if spec.name.trim().is_empty() {
        return Err("name is empty".to_owned());
    }
    let field = || spec.field.clone().ok_or_else(|| "needs field".to_owned());
    let kind = match spec.kind.as_str() {
        "threshold" => {
            if spec.above.is_none() && spec.below.is_none() {
                return Err("needs above or below".to_owned());
            }
            Kind::Threshold {
                field: field()?,
                above: spec.above,
                below: spec.below,
            }
        }
        "count" => Kind::Count {
            window: positive_secs(spec.window_secs, "window_secs")?,
            at_least: spec
                .at_least
                .filter(|n| *n > 0)
                .ok_or("needs at_least (≥ 1)")?,
        },
        "consecutive" => {
            if spec.when.is_none() {
                return Err("needs when (which events continue the run)".to_owned());
            }
            Kind::Consecutive {
                count: spec.count.filter(|n| *n > 0).ok_or("needs count (≥ 1)")?,
                within: positive_secs(spec.within_secs, "within_secs")?,
            }
        }
        "new_value" => Kind::NewValue {
            field: field()?,
            history: positive_secs(spec.history_secs, "history_secs")?,
        },
        "jump" => Kind::Jump {
            field: field()?,
            by: spec.by.filter(|b| *b > 0.0).ok_or("needs by (> 0)")?,
            within: positive_secs(spec.within_secs, "within_secs")?,
        },
        "time_of_day" => Kind::TimeOfDay {
            from: time_of_day(spec.from.as_deref(), "from")?,
            to: time_of_day(spec.to.as_deref(), "to")?,
        },
        other => {
            return Err(format!(
                "kind {other:?} is not one of threshold, count, consecutive, new_value, jump, time_of_day"
            ));
        }
    };
    let when = match spec.when {
        None => None,
        Some(w) => {
            let tests: Vec<Test> = [
                w.equals.map(Test::Equals),
                w.at_least.map(Test::AtLeast),
                w.above.map(Test::Above),
                w.below.map(Test::Below),
                w.at_most.map(Test::AtMost),
            ]
            .into_iter()
            .flatten()
            .collect();
            let [test] = <[Test; 1]>::try_from(tests).map_err(|_| {
                "when needs exactly one of equals, at_least, above, below, at_most".to_owned()
            })?;
            Some(When {
                field: w.field,
                test,
            })
        }
    };
    Ok(Rule {
        name: spec.name,
        severity: spec.severity,
        description: spec.description,
        event_type: spec.event_type,
        when,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_parse_into_every_named_rule() {
        let rules = parse(DEFAULT_RULES, "defaults").unwrap();
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "high_frequency_login",
                "repeated_login_failures",
                "high_value_purchase",
                "rapid_successive_purchases",
                "high_api_failure_rate",
                "unusual_time_activity",
                "unusual_location_login",
                "heart_rate_low",
                "heart_rate_high",
                "heart_rate_spike",
            ]
        );
    }

    #[test]
    fn errors_name_the_line_and_the_rule() {
        let text = "[[rules]]\nname = \"a\"\nseverity = \"low\"\ndescription = \"d\"\nkind = \"threshold\"\nfield = \"x\"\nabove = 1\n\n[[rules]]\nname = \"b\"\nseverity = \"low\"\ndescription = \"d\"\nkind = \"count\"\nwindow_secs = 0\nat_least = 3\n";
        let error = parse(text, "rules.toml").unwrap_err();
        assert!(
            error.contains("rules.toml: line 9: rule \"b\": window_secs must be more than 0"),
            "{error}"
        );
        let error =
            parse("[[rules]]\nname = \"a\"\nseverity = \"urgent\"\n", "r.toml").unwrap_err();
        assert!(
            error.contains("r.toml") && error.contains("line 3"),
            "{error}"
        );
        let error = parse(
            "[[rules]]\nname=\"a\"\nseverity=\"low\"\ndescription=\"d\"\nkind=\"teleport\"\n",
            "r",
        )
        .unwrap_err();
        assert!(error.contains("teleport"), "{error}");
    }
}
