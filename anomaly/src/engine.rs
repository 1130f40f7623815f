//! Evaluating rules against one user's events, in partition order, with
//! windows in event time. Every rule's answer for an event depends only on
//! the user's events within the rule's lookback before it, so the state
//! rebuilt from PostgreSQL after a restart or rebalance (the user's stored
//! events within the longest lookback, replayed) gives the same answers an
//! uninterrupted run gives.
//!
//! Out-of-order events: an event is evaluated when its partition delivers
//! it, against what came before it in the partition; windows count the
//! earlier-delivered events whose time falls in the window ending at the
//! event's own time. A late event therefore neither fires on behalf of
//! events delivered after it nor is ever evaluated twice.

use std::collections::VecDeque;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};

use super::payload::Payload;
use super::rules::{Kind, Rule};

/// Most values a `new_value` rule remembers per user; past it the oldest
/// is forgotten (and would count as new again).
pub const MAX_VALUES: usize = 64;

/// An event as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Its type.
    pub event_type: &'a str,
    /// Its time.
    pub ts: DateTime<Utc>,
    /// Its payload.
    pub payload: &'a Payload<'a>,
}

/// What one rule remembers about one user.
#[derive(Debug, Clone, PartialEq)]
enum Memory {
    /// Stateless rules.
    Nothing,
    /// `count`: times (µs) of the newest matching events, sorted, at most
    /// `at_least` of them.
    Times(VecDeque<i64>),
    /// `consecutive`: (time, matched) of the type's last `count + 1` events.
    Run(VecDeque<(i64, bool)>),
    /// `new_value`: values with the time last seen.
    Values(Vec<(String, i64)>),
    /// `jump`: the last value and its time.
    Last(Option<(i64, f64)>),
}

impl Memory {
    fn for_rule(rule: &Rule) -> Self {
        match rule.kind {
            Kind::Count { .. } => Memory::Times(VecDeque::new()),
            Kind::Consecutive { .. } => Memory::Run(VecDeque::new()),
            Kind::NewValue { .. } => Memory::Values(Vec::new()),
            Kind::Jump { .. } => Memory::Last(None),
            Kind::Threshold { .. } | Kind::TimeOfDay { .. } => Memory::Nothing,
        }
    }

    fn entries(&self) -> usize {
        match self {
            Memory::Nothing => 0,
            Memory::Times(t) => t.len(),
            Memory::Run(r) => r.len(),
            Memory::Values(v) => v.len(),
            Memory::Last(l) => usize::from(l.is_some()),
        }
    }
}

/// Everything the rules remember about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserState {
    memories: Vec<Memory>,
}

impl UserState {
    /// A user the rules know nothing about.
    pub fn new(rules: &[Rule]) -> Self {
        Self {
            memories: rules.iter().map(Memory::for_rule).collect(),
        }
    }

    /// Remembered entries, over all rules.
    pub fn entries(&self) -> usize {
        self.memories.iter().map(Memory::entries).sum()
    }
}

/// A rule that fired: its index and what it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Index into the rules.
    pub rule: usize,
    /// The observed values and the limits, stored as `details`.
    pub details: Value,
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Evaluates `event` against the rules at `indexes` (those reading its
/// type), updating `state`; returns what fired.
pub fn evaluate(
    rules: &[Rule],
    indexes: &[usize],
    state: &mut UserState,
    event: Seen<'_>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let t = event.ts.timestamp_micros();
    for &index in indexes {
        let (Some(rule), Some(memory)) = (rules.get(index), state.memories.get_mut(index)) else {
            continue;
        };
        if !rule.reads(event.event_type) {
            continue;
        }
        let matches = rule.when.as_ref().is_none_or(|w| w.matches(event.payload));
        let details = match (&rule.kind, memory) {
            (
                Kind::Threshold {
                    field,
                    above,
                    below,
                },
                _,
            ) if matches => {
                let value = event.payload.number(field);
                value
                    .filter(|v| above.is_some_and(|a| *v > a) || below.is_some_and(|b| *v < b))
                    .map(|v| json!({ "field": field, "value": v, "above": above, "below": below }))
            }
            (Kind::Count { window, at_least }, Memory::Times(times)) if matches => {
                let since = t - micros(*window);
                let before = times.iter().filter(|x| **x > since && **x <= t).count();
                let at = times.partition_point(|x| *x <= t);
                times.insert(at, t);
                if times.len() > *at_least as usize {
                    times.pop_front();
                }
                let limit = *at_least as usize;
                (before < limit && before + 1 >= limit).then(|| {
                    json!({ "count": before + 1, "at_least": at_least, "window_secs": window.as_secs() })
                })
            }
            (Kind::Consecutive { count, within }, Memory::Run(run)) => {
                // One more than the run that fires: a longer run must not
                // fire again at every further match.
                run.push_back((t, matches));
                if run.len() > *count as usize + 1 {
                    run.pop_front();
                }
                let since = t - micros(*within);
                let length = run
                    .iter()
                    .rev()
                    .take_while(|(at, matched)| *matched && *at > since)
                    .count();
                (matches && length == *count as usize).then(|| {
                    let when = rule.when.as_ref().map(|w| w.field.as_str());
                    json!({ "count": length, "field": when, "within_secs": within.as_secs() })
                })
            }
            (Kind::NewValue { field, history }, Memory::Values(values)) if matches => {
                match event.payload.get(field).as_ref().map(value_text) {
                    None => None,
                    Some(value) => {
                        let since = t - micros(*history);
                        values.retain(|(_, at)| *at > since);
                        let known = values.iter().any(|(v, _)| *v == value);
                        let fired = (!known && !values.is_empty()).then(|| {
                            let known: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
                            json!({ "field": field, "value": value, "known_values": known, "history_secs": history.as_secs() })
                        });
                        match values.iter_mut().find(|(v, _)| *v == value) {
                            Some(entry) => entry.1 = entry.1.max(t),
                            None => {
                                values.push((value, t));
                                if values.len() > MAX_VALUES {
                                    let oldest = values
                                        .iter()
                                        .enumerate()
                                        .min_by_key(|(_, (_, at))| *at)
                                        .map_or(0, |(i, _)| i);
                                    values.remove(oldest);
                                }
                            }
                        }
                        fired
                    }
                }
            }
            (Kind::Jump { field, by, within }, Memory::Last(last)) if matches => {
                match event.payload.number(field) {
                    None => None,
                    Some(value) => {
                        let fired = last
                            .filter(|(at, previous)| {
                                t - at <= micros(*within) && t >= *at && (value - previous).abs() >= *by
                            })
                            .map(|(_, previous)| {
                                json!({ "field": field, "value": value, "previous": previous, "by": by, "within_secs": within.as_secs() })
                            });
                        *last = Some((t, value));
                        fired
                    }
                }
            }
            (Kind::TimeOfDay { from, to }, _) if matches => {
                let time = event.ts.time();
                let inside = if from <= to {
                    time >= *from && time < *to
                } else {
                    time >= *from || time < *to
                };
                inside.then(|| {
                    json!({
                        "time": format!("{:02}:{:02}", time.hour(), time.minute()),
                        "from": from.format("%H:%M").to_string(),
                        "to": to.format("%H:%M").to_string(),
                    })
                })
            }
            _ => None,
        };
        if let Some(details) = details {
            found.push(Finding {
                rule: index,
                details,
            });
        }
    }
    found
}

/// A payload value as the text `new_value` compares.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{DEFAULT_RULES, parse};

    struct User {
        rules: Vec<Rule>,
        state: UserState,
        start: DateTime<Utc>,
    }

    impl User {
        fn new() -> Self {
            let rules = parse(DEFAULT_RULES, "defaults").unwrap();
            let state = UserState::new(&rules);
            // 12:00 UTC: outside the unusual hours.
            let start = "2026-11-24T12:00:00Z".parse().unwrap();
            Self {
                rules,
                state,
                start,
            }
        }

        /// Sends an event `secs` after the start; returns the rules fired.
        fn send(&mut self, secs: f64, event_type: &str, payload: Value) -> Vec<String> {
            let ts = self.start + chrono::Duration::milliseconds((secs * 1000.0) as i64);
            // The raw path, as new events take it.
            let text = payload.to_string();
            let payload = Payload::split(&text).unwrap();
            let all: Vec<usize> = (0..self.rules.len()).collect();
            evaluate(
                &self.rules,
                &all,
                &mut self.state,
                Seen {
                    event_type,
                    ts,
                    payload: &payload,
                },
            )
            .into_iter()
            .map(|f| self.rules[f.rule].name.clone())
            .collect()
        }
    }

    fn fired(all: &[Vec<String>], rule: &str) -> usize {
        all.iter().flatten().filter(|n| *n == rule).count()
    }

    #[test]
    fn high_frequency_login_fires_at_the_eleventh_login_in_a_minute() {
        let mut user = User::new();
        let login = || json!({"success": true, "location": "Berlin"});
        let ten: Vec<_> = (0..10)
            .map(|i| user.send(i as f64 * 5.0, "login", login()))
            .collect();
        assert_eq!(
            fired(&ten, "high_frequency_login"),
            0,
            "10 logins are allowed"
        );
        assert_eq!(
            user.send(50.0, "login", login()),
            vec!["high_frequency_login"]
        );
        assert!(
            user.send(51.0, "login", login()).is_empty(),
            "one anomaly per crossing"
        );
    }

    #[test]
    fn a_window_expires() {
        let mut user = User::new();
        let login = || json!({"success": true, "location": "Berlin"});
        for i in 0..10 {
            user.send(i as f64, "login", login());
        }
        // The first ten left the minute: this is the first login of a new one.
        assert!(user.send(61.0, "login", login()).is_empty());
    }

    #[test]
    fn three_failed_logins_in_a_row_fire_once_and_a_success_resets() {
        let mut user = User::new();
        let fail = || json!({"success": false, "location": "Berlin"});
        assert!(user.send(0.0, "login", fail()).is_empty());
        assert!(user.send(1.0, "login", fail()).is_empty());
        assert_eq!(
            user.send(2.0, "login", fail()),
            vec!["repeated_login_failures"]
        );
        assert!(
            user.send(3.0, "login", fail()).is_empty(),
            "the fourth does not fire again"
        );
        user.send(4.0, "login", json!({"success": true, "location": "Berlin"}));
        user.send(5.0, "login", fail());
        assert!(
            user.send(6.0, "login", fail()).is_empty(),
            "two after a success"
        );
    }

    #[test]
    fn thresholds_fire_above_not_at() {
        let mut user = User::new();
        assert!(
            user.send(0.0, "purchase", json!({"amount": 1000, "currency": "USD"}))
                .is_empty()
        );
        assert_eq!(
            user.send(
                1.0,
                "purchase",
                json!({"amount": 1000.01, "currency": "USD"})
            ),
            vec!["high_value_purchase"]
        );
        assert!(
            user.send(2.0, "heartbeat", json!({"heart_rate": 180}))
                .is_empty()
        );
        assert_eq!(
            user.send(400.0, "heartbeat", json!({"heart_rate": 200})),
            vec!["heart_rate_high"]
        );
        assert!(
            user.send(800.0, "heartbeat", json!({"heart_rate": 40}))
                .is_empty()
        );
        assert_eq!(
            user.send(1200.0, "heartbeat", json!({"heart_rate": 39})),
            vec!["heart_rate_low"]
        );
    }

    #[test]
    fn purchases_api_failures_spikes_locations_and_hours() {
        let mut user = User::new();
        let buy = json!({"amount": 10, "currency": "EUR"});
        let four: Vec<_> = (0..4)
            .map(|i| user.send(i as f64 * 600.0, "purchase", buy.clone()))
            .collect();
        assert_eq!(fired(&four, "rapid_successive_purchases"), 0);
        assert_eq!(
            user.send(3000.0, "purchase", buy),
            vec!["rapid_successive_purchases"]
        );

        let ok = json!({"status_code": 200, "endpoint": "/x"});
        let failed = json!({"status_code": 503, "endpoint": "/x"});
        let calls: Vec<_> = (0..4)
            .map(|i| user.send(4000.0 + i as f64, "api_call", failed.clone()))
            .collect();
        user.send(4005.0, "api_call", ok);
        assert_eq!(fired(&calls, "high_api_failure_rate"), 0);
        assert_eq!(
            user.send(4006.0, "api_call", failed),
            vec!["high_api_failure_rate"]
        );

        assert!(
            user.send(5000.0, "heartbeat", json!({"heart_rate": 70}))
                .is_empty()
        );
        assert!(
            user.send(5060.0, "heartbeat", json!({"heart_rate": 109}))
                .is_empty(),
            "39 is not a spike"
        );
        assert_eq!(
            user.send(5120.0, "heartbeat", json!({"heart_rate": 69})),
            vec!["heart_rate_spike"]
        );
        assert!(
            user.send(5500.0, "heartbeat", json!({"heart_rate": 120}))
                .is_empty(),
            "over 5 minutes apart"
        );

        assert!(
            user.send(
                6000.0,
                "login",
                json!({"success": true, "location": "Berlin"})
            )
            .is_empty(),
            "the first location is the baseline"
        );
        assert!(
            user.send(
                6001.0,
                "login",
                json!({"success": true, "location": "Berlin"})
            )
            .is_empty()
        );
        assert_eq!(
            user.send(
                6002.0,
                "login",
                json!({"success": true, "location": "Lagos"})
            ),
            vec!["unusual_location_login"]
        );

        // 03:00 UTC the next day.
        assert_eq!(
            user.send(15.0 * 3600.0, "click", json!({})),
            vec!["unusual_time_activity"]
        );
        assert!(
            user.send(17.0 * 3600.0, "click", json!({})).is_empty(),
            "05:00 is outside"
        );
    }

    #[test]
    fn a_late_event_counts_in_its_own_window_only() {
        let mut user = User::new();
        let login = || json!({"success": true, "location": "Berlin"});
        for i in 0..10 {
            user.send(100.0 + i as f64, "login", login());
        }
        // Delivered now, timed two minutes before the others: its minute
        // holds only itself.
        assert!(user.send(-20.0, "login", login()).is_empty());
        // The next in-order login is the eleventh within its minute.
        assert_eq!(
            user.send(111.0, "login", login()),
            vec!["high_frequency_login"]
        );
    }

    #[test]
    fn state_stays_bounded_by_what_the_rules_need() {
        let mut user = User::new();
        for i in 0..10_000 {
            user.send(
                i as f64,
                "login",
                json!({"success": i % 2 == 0, "location": format!("city-{i}")}),
            );
            user.send(i as f64, "heartbeat", json!({"heart_rate": 70}));
        }
        // 11 login times, 4 run entries, 64 locations, 1 heart rate.
        assert_eq!(user.state.entries(), 11 + 4 + MAX_VALUES + 1);
    }
}
