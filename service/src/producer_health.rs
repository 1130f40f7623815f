//! Whether a Kafka producer can still deliver, and when to replace it.
//!
//! librdkafka recovers from most broker trouble by itself, but not from
//! all of it: an idempotent producer can enter a fatal state (an
//! out-of-order sequence, a fenced producer id) in which every send fails
//! at once for as long as the process lives, and a broker can keep refusing
//! one producer id while it would take a new one. A [`ProducerHealth`]
//! hears the outcome of every send and answers two questions: is something
//! wrong that readiness must report ([`ProducerHealth::problem`]), and is it
//! time to build a new producer ([`ProducerHealth::rebuild_due`]).
//!
//! The rule, in full:
//! - **not ready** after a fatal error, or after `KAFKA_UNREADY_AFTER_FAILED_SENDS`
//!   sends in a row that Kafka did not acknowledge (refused by a broker or
//!   timed out; a full queue or an event too large is not the broker's
//!   failure and does not count);
//! - **ready again** on the next acknowledged send, when the producer was
//!   replaced, or after [`FORGIVE_AFTER`] without a failed send while the
//!   broker answers metadata requests (a replica taken out of rotation gets
//!   no sends to prove itself with);
//! - **replaced** at once after a fatal error, or after
//!   `KAFKA_REBUILD_AFTER_REFUSED_SENDS` sends in a row refused by a broker
//!   or timed out while a broker answers metadata requests (the service's
//!   probe tells, [`ProducerHealth::broker_answers`]), at most once per
//!   [`REBUILD_BACKOFF`]. Timeouts count only while a broker answers: then
//!   the producer, not the cluster, is what is stuck. Seen with a broker
//!   that restarted empty: it no longer knew the idempotent producer's id,
//!   librdkafka bumped the epoch locally again and again, and every send
//!   timed out while the cluster answered; a new producer gets a new id.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::util::{AsyncRuntime, Timeout};

use crate::settings::{ConfigError, Env, Var, var};

/// Failed sends in a row that make the service not ready.
pub const UNREADY_AFTER_VAR: Var = var(
    "KAFKA_UNREADY_AFTER_FAILED_SENDS",
    Some("5"),
    "sends in a row Kafka did not acknowledge (refused or timed out) after which /ready answers 503",
);

/// Refused sends in a row after which the producer is replaced.
pub const REBUILD_AFTER_VAR: Var = var(
    "KAFKA_REBUILD_AFTER_REFUSED_SENDS",
    Some("20"),
    "sends in a row refused by a broker, or timed out while a broker answers, after which the producer is replaced by a new one (0: only after a fatal error)",
);

/// How long without a failed send, with the broker answering, before a run
/// of failures stops counting against readiness.
pub const FORGIVE_AFTER: Duration = Duration::from_secs(10);

/// The least time between two replacements of one producer.
pub const REBUILD_BACKOFF: Duration = Duration::from_secs(5);

/// When a producer counts as failing and when it is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRule {
    /// `KAFKA_UNREADY_AFTER_FAILED_SENDS`.
    pub unready_after: u32,
    /// `KAFKA_REBUILD_AFTER_REFUSED_SENDS`; 0 means only a
    /// fatal error replaces the producer.
    pub rebuild_after: u32,
}

impl HealthRule {
    /// Reads [`UNREADY_AFTER_VAR`] and [`REBUILD_AFTER_VAR`].
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(HealthRule {
            unready_after: env.positive(UNREADY_AFTER_VAR.name)?,
            rebuild_after: env.required(REBUILD_AFTER_VAR.name)?,
        })
    }
}

impl Default for HealthRule {
    fn default() -> Self {
        HealthRule {
            unready_after: 5,
            rebuild_after: 20,
        }
    }
}

/// How one send (a request's events, a publication) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Kafka acknowledged everything.
    Delivered,
    /// A broker refused a message (an error code in its answer).
    Refused,
    /// No acknowledgement in time: the broker is unreachable or slow.
    TimedOut,
    /// Failed on this side (queue full, event too large): says nothing
    /// about the producer's health.
    Local,
}

/// Why a producer is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildReason {
    /// librdkafka declared the producer unusable.
    Fatal,
    /// Brokers kept refusing its sends.
    Refused,
    /// Its sends kept timing out while a broker answered.
    TimedOut,
}

impl RebuildReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RebuildReason::Fatal => "fatal",
            RebuildReason::Refused => "refused",
            RebuildReason::TimedOut => "timed_out",
        }
    }
}

#[derive(Default)]
struct State {
    /// Sends in a row refused, or timed out while a broker answered.
    refused_in_row: u32,
    /// Whether the last failure in that run was a timeout.
    last_timed_out: bool,
    /// Whether a broker answered the service's last probe.
    broker_answers: bool,
    last_failure: Option<Instant>,
    last_error: String,
    fatal: Option<String>,
    last_rebuild: Option<Instant>,
}

/// What one producer's sends say about it; see the module docs for the rule.
pub struct ProducerHealth {
    rule: HealthRule,
    /// Failed sends in a row; read without the lock on every delivery.
    failed_in_row: AtomicU32,
    state: Mutex<State>,
    rebuilt: IntCounterVec,
}

impl ProducerHealth {
    /// A healthy producer's record, counting replacements in a counter
    /// named `rebuilt_metric` (labelled by reason) for the caller to
    /// register.
    pub fn new(rule: HealthRule, rebuilt_metric: &str) -> Result<Self, prometheus::Error> {
        let rebuilt = IntCounterVec::new(
            Opts::new(
                rebuilt_metric,
                "Kafka producers replaced by a new one, by reason (fatal, refused, timed_out)",
            ),
            &["reason"],
        )?;
        for reason in [
            RebuildReason::Fatal,
            RebuildReason::Refused,
            RebuildReason::TimedOut,
        ] {
            rebuilt.with_label_values(&[reason.label()]);
        }
        Ok(ProducerHealth {
            rule,
            failed_in_row: AtomicU32::new(0),
            state: Mutex::default(),
            rebuilt,
        })
    }

    /// The replacements counter, to register.
    pub fn rebuilt_counter(&self) -> IntCounterVec {
        self.rebuilt.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes how a send ended; `error` describes a failure.
    pub fn record(&self, outcome: SendOutcome, error: &dyn std::fmt::Display) {
        match outcome {
            SendOutcome::Delivered => {
                // The common case costs one atomic load.
                if self.failed_in_row.load(Ordering::Relaxed) != 0 {
                    self.failed_in_row.store(0, Ordering::Relaxed);
                    self.state().refused_in_row = 0;
                }
            }
            SendOutcome::Refused | SendOutcome::TimedOut => {
                let mut state = self.state();
                self.failed_in_row.fetch_add(1, Ordering::Relaxed);
                if outcome == SendOutcome::Refused || state.broker_answers {
                    state.refused_in_row += 1;
                    state.last_timed_out = outcome == SendOutcome::TimedOut;
                } else {
                    state.refused_in_row = 0;
                }
                state.last_failure = Some(Instant::now());
                state.last_error = error.to_string();
            }
            SendOutcome::Local => {}
        }
    }

    /// Notes that librdkafka declared the producer unusable.
    pub fn fatal(&self, reason: String) {
        let mut state = self.state();
        if state.fatal.is_none() {
            self.failed_in_row.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%reason, "the Kafka producer hit a fatal error; it will be replaced");
            state.fatal = Some(reason);
        }
    }

    /// True after a fatal error, until the producer is replaced.
    pub fn is_fatal(&self) -> bool {
        self.state().fatal.is_some()
    }

    /// What keeps the producer from counting as able to deliver, if anything.
    pub fn problem(&self) -> Option<String> {
        let failed = self.failed_in_row.load(Ordering::Relaxed);
        if failed == 0 {
            return None;
        }
        let state = self.state();
        if let Some(fatal) = &state.fatal {
            return Some(format!("the Kafka producer hit a fatal error: {fatal}"));
        }
        (failed >= self.rule.unready_after).then(|| {
            format!(
                "the last {failed} sends to Kafka failed (last: {}); KAFKA_UNREADY_AFTER_FAILED_SENDS is {}",
                state.last_error, self.rule.unready_after
            )
        })
    }

    /// Whether the producer should be replaced now, and why.
    pub fn rebuild_due(&self) -> Option<RebuildReason> {
        if self.failed_in_row.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let state = self.state();
        if state
            .last_rebuild
            .is_some_and(|at| at.elapsed() < REBUILD_BACKOFF)
        {
            return None;
        }
        if state.fatal.is_some() {
            Some(RebuildReason::Fatal)
        } else if self.rule.rebuild_after > 0 && state.refused_in_row >= self.rule.rebuild_after {
            Some(if state.last_timed_out {
                RebuildReason::TimedOut
            } else {
                RebuildReason::Refused
            })
        } else {
            None
        }
    }

    /// Notes that the producer was replaced: its record starts clean.
    pub fn rebuilt(&self, reason: RebuildReason) {
        let mut state = self.state();
        *state = State {
            last_rebuild: Some(Instant::now()),
            broker_answers: state.broker_answers,
            ..State::default()
        };
        self.failed_in_row.store(0, Ordering::Relaxed);
        self.rebuilt.with_label_values(&[reason.label()]).inc();
    }

    /// Notes whether a broker answered the service's last probe: sends that
    /// time out while one does count towards a replacement.
    pub fn broker_answers(&self, answers: bool) {
        self.state().broker_answers = answers;
    }

    /// Forgets a run of failures that ended [`FORGIVE_AFTER`] ago, given
    /// that the broker answers now (`broker_answers`); true when it did.
    /// A fatal error is never forgiven: only a replacement ends it.
    pub fn forgive_if_quiet(&self, broker_answers: bool) -> bool {
        if !broker_answers || self.failed_in_row.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut state = self.state();
        let quiet = state
            .last_failure
            .is_none_or(|at| at.elapsed() >= FORGIVE_AFTER);
        if state.fatal.is_some() || !quiet {
            return false;
        }
        state.refused_in_row = 0;
        self.failed_in_row.store(0, Ordering::Relaxed);
        true
    }
}

impl SendOutcome {
    /// What a failed send's error says about the producer.
    pub fn of_error(error: &KafkaError) -> Self {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                SendOutcome::TimedOut
            }
            Some(
                RDKafkaErrorCode::QueueFull
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::PurgeQueue
                | RDKafkaErrorCode::PurgeInflight,
            ) => SendOutcome::Local,
            _ => SendOutcome::Refused,
        }
    }
}

/// A producer that can be replaced: librdkafka's fatal state, and how to
/// let it go.
pub trait Replaceable: Clone + Send + Sync + 'static {
    /// librdkafka's fatal error, if the producer hit one.
    fn fatal_error(&self) -> Option<String>;
    /// Fails what it still holds (queued and in flight: their senders hear
    /// a purge error, never a success) and waits briefly for those answers.
    /// Blocks.
    fn retire(self);
}

/// How long a replaced producer gets to hand back its messages' fates.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(5);

fn fatal_of<C: ClientContext>(client: &rdkafka::client::Client<C>) -> Option<String> {
    client
        .fatal_error()
        .map(|(code, reason)| format!("{code}: {reason}"))
}

/// [`Replaceable::retire`] for any producer.
fn purge_and_flush<C: ProducerContext, P: Producer<C>>(producer: &P) {
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = producer.flush(Timeout::After(RETIRE_TIMEOUT));
}

impl<C: ProducerContext + 'static> Replaceable for ThreadedProducer<C> {
    fn fatal_error(&self) -> Option<String> {
        fatal_of(self.client())
    }

    fn retire(self) {
        purge_and_flush(&self);
    }
}

impl<C: ClientContext + 'static, R: AsyncRuntime + Send + Sync + 'static> Replaceable
    for FutureProducer<C, R>
{
    fn fatal_error(&self) -> Option<String> {
        fatal_of(self.client())
    }

    fn retire(self) {
        purge_and_flush(&self);
    }
}

/// The builder of a producer's replacements.
type Build<P> = Box<dyn Fn() -> KafkaResult<P> + Send + Sync>;

/// A producer with its [`ProducerHealth`], replaced by a new one when the
/// health record calls for it. Senders take a handle with
/// [`HealingProducer::get`], send through it, and report with
/// [`HealingProducer::settle`].
pub struct HealingProducer<P: Replaceable> {
    current: RwLock<P>,
    build: Build<P>,
    health: ProducerHealth,
    /// Held while a replacement is built, so concurrent failures build one.
    rebuilding: Mutex<()>,
}

impl<P: Replaceable> HealingProducer<P> {
    /// Builds the first producer with `build` (which makes every
    /// replacement too); replacements are counted in `rebuilt_metric`.
    pub fn new(
        build: impl Fn() -> KafkaResult<P> + Send + Sync + 'static,
        rule: HealthRule,
        rebuilt_metric: &str,
    ) -> anyhow::Result<Self> {
        let first = build()?;
        Ok(HealingProducer {
            current: RwLock::new(first),
            build: Box::new(build),
            health: ProducerHealth::new(rule, rebuilt_metric)?,
            rebuilding: Mutex::new(()),
        })
    }

    /// The producer in use (a cheap handle on it).
    pub fn get(&self) -> P {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What the producer's recent sends say about it.
    pub fn health(&self) -> &ProducerHealth {
        &self.health
    }

    /// Notes how a send through `producer` ended, with `error` describing
    /// a failure; after a failure, replaces the producer when its record
    /// calls for it.
    pub fn settle(&self, producer: P, outcome: SendOutcome, error: &dyn std::fmt::Display) {
        self.health.record(outcome, error);
        if outcome == SendOutcome::Delivered {
            return;
        }
        if let Some(fatal) = producer.fatal_error() {
            self.health.fatal(fatal);
        }
        drop(producer);
        self.heal();
    }

    /// Replaces the producer when its record calls for it (see
    /// [`ProducerHealth::rebuild_due`]); why, when it did. What the old
    /// one still held is purged: its senders hear a failure, never a
    /// success, and may retry.
    pub fn heal(&self) -> Option<RebuildReason> {
        self.health.rebuild_due()?;
        let _building = self.rebuilding.try_lock().ok()?;
        // Another sender may have just replaced it.
        let reason = self.health.rebuild_due()?;
        let fresh = match (self.build)() {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::error!(%error, "could not create a new Kafka producer; keeping the old one");
                return None;
            }
        };
        let old = std::mem::replace(
            &mut *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            fresh,
        );
        self.health.rebuilt(reason);
        tracing::warn!(
            reason = reason.label(),
            "replaced the Kafka producer; sends still waiting on the old one fail and may be retried"
        );
        // Purging and flushing block; the old producer answers its
        // senders meanwhile.
        std::thread::spawn(move || old.retire());
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(unready_after: u32, rebuild_after: u32) -> ProducerHealth {
        ProducerHealth::new(
            HealthRule {
                unready_after,
                rebuild_after,
            },
            "test_rebuilt_total",
        )
        .unwrap()
    }

    #[test]
    fn a_run_of_failures_makes_it_unready_and_a_delivery_heals() {
        let h = health(3, 0);
        for _ in 0..2 {
            h.record(SendOutcome::TimedOut, &"timed out");
        }
        assert_eq!(h.problem(), None);
        h.record(SendOutcome::Refused, &"InvalidProducerEpoch");
        let problem = h.problem().unwrap();
        assert!(problem.contains("last 3 sends") && problem.contains("InvalidProducerEpoch"));
        h.record(SendOutcome::Delivered, &"");
        assert_eq!(h.problem(), None);
    }

    #[test]
    fn local_failures_do_not_count() {
        let h = health(1, 1);
        h.record(SendOutcome::Local, &"queue full");
        assert_eq!((h.problem(), h.rebuild_due()), (None, None));
    }

    #[test]
    fn timeouts_call_for_a_rebuild_only_while_a_broker_answers() {
        let h = health(1, 2);
        h.record(SendOutcome::TimedOut, &"x");
        h.record(SendOutcome::TimedOut, &"x");
        assert_eq!(
            h.rebuild_due(),
            None,
            "the cluster is down: no new producer helps"
        );
        h.broker_answers(true);
        h.record(SendOutcome::TimedOut, &"x");
        assert_eq!(h.rebuild_due(), None);
        h.record(SendOutcome::TimedOut, &"x");
        assert_eq!(h.rebuild_due(), Some(RebuildReason::TimedOut));
        h.rebuilt(RebuildReason::TimedOut);
        assert_eq!(h.rebuilt.with_label_values(&["timed_out"]).get(), 1);
        assert!(
            h.state().broker_answers,
            "a replacement keeps what the probe saw"
        );
    }

    #[test]
    fn refusals_in_a_row_call_for_a_rebuild_timeouts_do_not() {
        let h = health(1, 2);
        h.record(SendOutcome::Refused, &"x");
        h.record(SendOutcome::TimedOut, &"x");
        h.record(SendOutcome::Refused, &"x");
        assert_eq!(h.rebuild_due(), None, "a timeout broke the run");
        h.record(SendOutcome::Refused, &"x");
        assert_eq!(h.rebuild_due(), Some(RebuildReason::Refused));
        h.rebuilt(RebuildReason::Refused);
        assert_eq!((h.problem(), h.rebuild_due()), (None, None));
        // Within the backoff, another run waits.
        h.record(SendOutcome::Refused, &"x");
        h.record(SendOutcome::Refused, &"x");
        assert_eq!(h.rebuild_due(), None);
        assert_eq!(h.rebuilt.with_label_values(&["refused"]).get(), 1);
    }

    #[test]
    fn fatal_is_a_problem_until_rebuilt_and_never_forgiven() {
        let h = health(5, 0);
        h.record(SendOutcome::Refused, &"OutOfOrderSequenceNumber");
        h.fatal("sequence desynchronization".to_owned());
        assert!(h.problem().unwrap().contains("fatal"));
        assert_eq!(h.rebuild_due(), Some(RebuildReason::Fatal));
        assert!(!h.forgive_if_quiet(true));
        h.rebuilt(RebuildReason::Fatal);
        assert_eq!(h.problem(), None);
    }

    #[test]
    fn forgiveness_needs_the_broker_to_answer() {
        let h = health(1, 0);
        h.record(SendOutcome::TimedOut, &"x");
        h.state().last_failure = Some(Instant::now() - FORGIVE_AFTER);
        assert!(!h.forgive_if_quiet(false));
        assert!(h.problem().is_some());
        assert!(h.forgive_if_quiet(true));
        assert_eq!(h.problem(), None);
    }
}
