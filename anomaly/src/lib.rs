//! eventpipe's anomaly detection, with no I/O: [`rules`] says what to look for,
//! [`engine`] evaluates one user's events, and [`Detector`] keeps every
//! user's state between batches, bounded, lending a batch its users'
//! states as a [`Staged`]: kept when the batch is durable, dropped (and
//! later rebuilt from PostgreSQL) when its write fails.
//!
//! A user's state is loaded lazily: the first time a batch holds a user the
//! detector does not know (after start-up, a rebalance or an eviction), the
//! user's stored events within the rules' lookback are replayed into a
//! fresh state. Evicting a user is therefore always safe.

pub mod engine;
pub mod payload;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

pub use eventpipe_contract::Anomaly;

pub use self::engine::UserState;
use self::engine::{Seen, evaluate};
pub use self::payload::Payload;
use self::rules::{Rule, Severity};

/// Namespace of anomaly ids: UUIDv5 of `rule:event_id` in it, so the same
/// rule firing on the same event always gets the same id.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5d1c_7a3e_2f4b_4c8e_9a61_0b7e_3c2d_1f00);

/// The id of `rule` firing on `event_id`.
pub fn anomaly_id(rule: &str, event_id: Uuid) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{rule}:{event_id}").as_bytes())
}

/// A stored event of the user's history, replayed to rebuild state.
#[derive(Debug, Clone)]
pub struct Past {
    /// Its user.
    pub user_id: String,
    /// Its type.
    pub event_type: String,
    /// Its time.
    pub ts: DateTime<Utc>,
    /// Its payload.
    pub payload: Value,
}

/// The rules, and what follows from them.
#[derive(Debug)]
pub struct RuleSet {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// For each event type some rule names: the rules that read it.
    by_type: HashMap<String, Plan>,
    /// For every other type: the rules that read every type.
    other: Plan,
}

/// Which rules read one event type, worked out once.
#[derive(Debug, Default)]
struct Plan {
    rules: Vec<usize>,
    needs_payload: bool,
}

impl Plan {
    fn for_type(rules: &[Rule], event_type: Option<&str>) -> Self {
        let reading: Vec<usize> = (0..rules.len())
            .filter(|&i| match event_type {
                Some(t) => rules[i].reads(t),
                None => rules[i].event_type.is_none(),
            })
            .collect();
        let needs_payload = reading.iter().any(|&i| {
            let r = &rules[i];
            r.when.is_some()
                || !matches!(
                    r.kind,
                    rules::Kind::TimeOfDay { .. } | rules::Kind::Count { .. }
                )
        });
        Plan {
            rules: reading,
            needs_payload,
        }
    }
}

impl RuleSet {
    /// Wraps checked rules.
    pub fn new(rules: Vec<Rule>) -> Self {
        let by_type = rules
            .iter()
            .filter_map(|r| r.event_type.clone())
            .map(|t| {
                let plan = Plan::for_type(&rules, Some(&t));
                (t, plan)
            })
            .collect();
        let other = Plan::for_type(&rules, None);
        Self {
            rules,
            by_type,
            other,
        }
    }

    fn plan(&self, event_type: &str) -> &Plan {
        self.by_type.get(event_type).unwrap_or(&self.other)
    }

    /// Whether a rule reading `event_type` needs its payload.
    pub fn needs_payload(&self, event_type: &str) -> bool {
        self.plan(event_type).needs_payload
    }

    /// For each event type a stateful rule reads (`*` for rules of every
    /// type), how far back its history matters.
    pub fn lookbacks(&self) -> Vec<(String, Duration)> {
        let mut out: Vec<(String, Duration)> = Vec::new();
        for rule in &self.rules {
            let lookback = rule.lookback();
            if lookback.is_zero() {
                continue;
            }
            let key = rule.event_type.clone().unwrap_or_else(|| "*".to_owned());
            match out.iter_mut().find(|(t, _)| *t == key) {
                Some((_, l)) => *l = (*l).max(lookback),
                None => out.push((key, lookback)),
            }
        }
        out
    }
}

/// Every user's state, bounded.
#[derive(Debug)]
pub struct Detector {
    rules: Arc<RuleSet>,
    users: HashMap<String, (UserState, u64)>,
    max_users: usize,
    batches: u64,
}

/// One batch's view of the state: copies of its users' states, to be
/// evaluated and, once the batch is durable, kept.
#[derive(Debug)]
pub struct Staged {
    rules: Arc<RuleSet>,
    states: HashMap<String, UserState>,
    /// Users with no state yet: their history must be replayed first.
    pub missing: Vec<String>,
}

impl Detector {
    /// A detector for `rules` tracking at most `max_users` users.
    pub fn new(rules: Arc<RuleSet>, max_users: usize) -> Self {
        Self {
            rules,
            users: HashMap::new(),
            max_users: max_users.max(1),
            batches: 0,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Takes the state of `users` out for a batch; users it does not know
    /// are listed in [`Staged::missing`]. Until [`Detector::keep`] gives
    /// them back, those users are unknown here: a batch whose write fails
    /// is simply dropped, and its users' states are rebuilt from
    /// PostgreSQL when they next appear.
    pub fn stage<'a>(&mut self, users: impl IntoIterator<Item = &'a str>) -> Staged {
        let mut states = HashMap::new();
        let mut missing = Vec::new();
        for user in users {
            if states.contains_key(user) {
                continue;
            }
            match self.users.remove_entry(user) {
                Some((key, (state, _))) => {
                    states.insert(key, state);
                }
                None => {
                    states.insert(user.to_owned(), UserState::new(&self.rules.rules));
                    missing.push(user.to_owned());
                }
            }
        }
        Staged {
            rules: self.rules.clone(),
            states,
            missing,
        }
    }

    /// Keeps a durable batch's states, then evicts the users seen least
    /// recently while there are more than the cap.
    pub fn keep(&mut self, staged: Staged) {
        self.batches += 1;
        for (user, state) in staged.states {
            self.users.insert(user, (state, self.batches));
        }
        if self.users.len() > self.max_users {
            // Evict a tenth more than needed so eviction is rare, not per
            // batch; the least recently seen go first.
            let excess = self.users.len() - self.max_users + self.max_users / 10;
            let mut by_age: Vec<(u64, String)> = self
                .users
                .iter()
                .map(|(user, (_, seen))| (*seen, user.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, user) in by_age.into_iter().take(excess) {
                self.users.remove(&user);
            }
        }
    }

    /// Forgets everything (partitions moved: their users may be elsewhere
    /// now, and come back with history this worker did not see).
    pub fn forget(&mut self) {
        self.users.clear();
    }

    /// Users tracked.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Entries remembered over all users and rules.
    pub fn entries(&self) -> usize {
        self.users.values().map(|(s, _)| s.entries()).sum()
    }
}

impl Staged {
    /// See [`RuleSet::lookbacks`].
    pub fn lookbacks(&self) -> Vec<(String, Duration)> {
        self.rules.lookbacks()
    }

    /// Whether a rule reading `event_type` looks into the payload (if none
    /// does, the payload need not be parsed).
    pub fn needs_payload(&self, event_type: &str) -> bool {
        self.rules.needs_payload(event_type)
    }

    /// A copy of `user`'s state, to restore if a write fails.
    pub fn state_of(&self, user: &str) -> Option<UserState> {
        self.states.get(user).cloned()
    }

    /// Puts back a state taken with [`Staged::state_of`].
    pub fn restore(&mut self, user: &str, state: UserState) {
        self.states.insert(user.to_owned(), state);
    }

    /// Replays one event of a missing user's history (in partition order),
    /// discarding what fires: it fired when the event was new.
    pub fn replay(&mut self, past: &Past) {
        if let Some(state) = self.states.get_mut(&past.user_id) {
            evaluate(
                &self.rules.rules,
                &self.rules.plan(&past.event_type).rules,
                state,
                Seen {
                    event_type: &past.event_type,
                    ts: past.ts,
                    payload: &Payload::Parsed(&past.payload),
                },
            );
        }
    }

    /// Evaluates a newly stored event; returns the anomalies it triggers.
    pub fn evaluate(
        &mut self,
        event_id: Uuid,
        user_id: &str,
        event_type: &str,
        ts: DateTime<Utc>,
        payload: &Payload<'_>,
    ) -> Vec<Anomaly> {
        let Some(state) = self.states.get_mut(user_id) else {
            return Vec::new();
        };
        let rules = &self.rules.rules;
        evaluate(
            rules,
            &self.rules.plan(event_type).rules,
            state,
            Seen {
                event_type,
                ts,
                payload,
            },
        )
        .into_iter()
        .map(|finding| {
            let rule = &rules[finding.rule];
            Anomaly {
                anomaly_id: anomaly_id(&rule.name, event_id),
                event_id,
                user_id: user_id.to_owned(),
                rule: rule.name.clone(),
                severity: severity(rule.severity),
                description: rule.description.clone(),
                event_ts: ts,
                details: finding.details,
                evidence: Value::Null,
            }
        })
        .collect()
    }
}

fn severity(s: Severity) -> &'static str {
    s.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{DEFAULT_RULES, parse};
    use serde_json::json;

    fn detector(max_users: usize) -> Detector {
        Detector::new(
            Arc::new(RuleSet::new(parse(DEFAULT_RULES, "d").unwrap())),
            max_users,
        )
    }

    #[test]
    fn ids_are_the_same_for_the_same_rule_and_event() {
        let event = Uuid::new_v4();
        assert_eq!(anomaly_id("r", event), anomaly_id("r", event));
        assert_ne!(anomaly_id("r", event), anomaly_id("s", event));
    }

    #[test]
    fn a_replayed_history_gives_the_state_an_uninterrupted_run_has() {
        let t0: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let payload = json!({"success": false, "location": "Berlin"});
        let mut live = detector(10);
        let mut staged = live.stage(["u"]);
        assert_eq!(staged.missing, vec!["u"]);
        for i in 0..2 {
            let ts = t0 + chrono::Duration::seconds(i);
            assert!(
                staged
                    .evaluate(Uuid::new_v4(), "u", "login", ts, &Payload::Parsed(&payload))
                    .is_empty()
            );
        }
        live.keep(staged);
        // A restarted worker replays the two stored failures.
        let mut restarted = detector(10);
        let mut rebuilt = restarted.stage(["u"]);
        for i in 0..2 {
            rebuilt.replay(&Past {
                user_id: "u".into(),
                event_type: "login".into(),
                ts: t0 + chrono::Duration::seconds(i),
                payload: payload.clone(),
            });
        }
        restarted.keep(rebuilt);
        for d in [&mut live, &mut restarted] {
            let mut staged = d.stage(["u"]);
            assert!(staged.missing.is_empty());
            let found = staged.evaluate(
                Uuid::new_v4(),
                "u",
                "login",
                t0 + chrono::Duration::seconds(2),
                &Payload::Parsed(&payload),
            );
            assert_eq!(found.len(), 1, "the third failure fires either way");
            assert_eq!(found[0].rule, "repeated_login_failures");
        }
    }

    #[test]
    fn a_flood_of_users_stays_under_the_cap() {
        let mut d = detector(1000);
        let payload = json!({"heart_rate": 70});
        for batch in 0..100 {
            let users: Vec<String> = (0..100).map(|i| format!("user-{batch}-{i}")).collect();
            let mut staged = d.stage(users.iter().map(String::as_str));
            for u in &users {
                staged.evaluate(
                    Uuid::new_v4(),
                    u,
                    "heartbeat",
                    Utc::now(),
                    &Payload::Parsed(&payload),
                );
            }
            d.keep(staged);
            assert!(d.users() <= 1000, "{} users tracked", d.users());
        }
        assert!(d.users() >= 900);
        // One batch with more users than the cap keeps some of them.
        let users: Vec<String> = (0..5000).map(|i| format!("big-{i}")).collect();
        let staged = d.stage(users.iter().map(String::as_str));
        d.keep(staged);
        assert!((900..=1000).contains(&d.users()), "{}", d.users());
    }

    #[test]
    fn a_failed_batch_forgets_its_users_to_rebuild_them() {
        let mut d = detector(10);
        let mut staged = d.stage(["u"]);
        staged.evaluate(
            Uuid::new_v4(),
            "u",
            "heartbeat",
            Utc::now(),
            &Payload::Parsed(&json!({"heart_rate": 70})),
        );
        d.keep(staged);
        assert_eq!(d.users(), 1);
        let staged = d.stage(["u"]);
        assert!(staged.missing.is_empty());
        drop(staged);
        assert_eq!(d.users(), 0);
        assert_eq!(
            d.stage(["u"]).missing,
            vec!["u"],
            "rebuilt from PostgreSQL next time"
        );
        let mut staged = d.stage(["u"]);
        staged.evaluate(
            Uuid::new_v4(),
            "u",
            "heartbeat",
            Utc::now(),
            &Payload::Parsed(&json!({"heart_rate": 70})),
        );
        d.keep(staged);
        assert_eq!(d.entries(), 1);
    }
}
