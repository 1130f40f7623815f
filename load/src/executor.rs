//! The executors. Arrival-rate executors (the open model) start iterations
//! on a schedule from a dedicated pacing thread, whatever the server does:
//! a start that finds every VU busy is dropped and counted, never queued.
//! `constant-vus` (the closed model) loops each VU as fast as its answers
//! come. Each VU owns one keep-alive connection and its part of the ledger.
//!
//! When the schedule ends, iterations in flight get the graceful stop to
//! finish; what is still running then is cut off, counted as interrupted,
//! and its events marked as of unknown outcome.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::audit::Sampler;
use crate::bodies::{Bodies, BodySource};
use crate::client::{Connection, Target};
use crate::control::{Control, LiveSchedule};
use crate::ledger::{ACCEPTED, Ledger, REJECTED, Tally, UNKNOWN};
use crate::schedule::Schedule;
use crate::stats::{Recorder, Sample};

/// What every VU shares.
#[derive(Debug)]
pub struct Context {
    /// Where requests go.
    pub target: Target,
    /// What they carry.
    pub bodies: Arc<BodySource>,
    /// Where results go.
    pub recorder: Arc<Recorder>,
    /// Statuses that mean a valid request succeeded.
    pub success: Vec<u16>,
    /// How long a request may take.
    pub timeout: Duration,
    /// Set to stop starting iterations (interrupt, abortOnFail).
    pub stop: Arc<AtomicBool>,
    /// Samples accepted events for the visibility latency.
    pub sampler: Option<Sampler>,
    /// The controls of `--forever --control`, which count every outcome.
    pub control: Option<Arc<Control>>,
}

/// How iterations are started.
#[derive(Debug)]
pub enum Plan {
    /// Open model: on `schedule`, with up to `max_vus` VUs, `pre_allocated`
    /// of them connected before the start.
    Arrivals {
        /// Start times.
        schedule: Schedule,
        /// VUs made ready before the start.
        pre_allocated: u32,
        /// VUs at most.
        max_vus: u32,
    },
    /// Open model paced by the controls' rate as it changes.
    Live {
        /// Start times.
        schedule: LiveSchedule,
        /// VUs made ready before the start.
        pre_allocated: u32,
        /// VUs at most.
        max_vus: u32,
    },
    /// Closed model: `vus` VUs looping for `duration`.
    Vus {
        /// VUs.
        vus: u32,
        /// How long.
        duration: Duration,
    },
}

/// What a finished run hands back.
#[derive(Debug)]
pub struct Finished {
    /// Every event's flags.
    pub ledger: Ledger,
    /// When the first iteration was due.
    pub started: Instant,
}

/// Runs `plan`. Returns once every VU has finished or been cut off.
pub async fn execute(context: Arc<Context>, plan: Plan, graceful_stop: Duration) -> Finished {
    let (hard_stop, hard) = watch::channel(false);
    let (started, handles) = match plan {
        Plan::Arrivals {
            schedule,
            pre_allocated,
            max_vus,
        } => open(context.clone(), schedule, pre_allocated, max_vus, hard).await,
        Plan::Live {
            schedule,
            pre_allocated,
            max_vus,
        } => open(context.clone(), schedule, pre_allocated, max_vus, hard).await,
        Plan::Vus { vus, duration } => closed(context.clone(), vus, duration, hard).await,
    };
    let mut ledger = Ledger::default();
    let mut handles = handles;
    let all = join_all(handles.iter_mut());
    let results = match tokio::time::timeout(graceful_stop, all).await {
        Ok(results) => results,
        Err(_) => {
            let _ = hard_stop.send(true);
            join_all(handles).await
        }
    };
    for tally in results.into_iter().flatten() {
        ledger.absorb(tally);
    }
    Finished { ledger, started }
}

/// One VU: a connection, a body maker, and the means to be cut off.
struct Vu {
    id: usize,
    context: Arc<Context>,
    connection: Option<Connection>,
    bodies: Bodies,
    hard: watch::Receiver<bool>,
}

impl Vu {
    async fn new(id: usize, context: Arc<Context>, hard: watch::Receiver<bool>) -> Self {
        let bodies = Bodies::new(context.bodies.clone(), id as u64);
        // A VU that cannot connect yet tries again in its first iteration.
        let connection = Connection::open(&context.target).await.ok();
        context.recorder.allocated.fetch_add(1, Ordering::Relaxed);
        Self {
            id,
            context,
            connection,
            bodies,
            hard,
        }
    }

    /// One iteration, due at `intended`. False if it was cut off.
    async fn iterate(&mut self, intended: Instant) -> bool {
        let context = &*self.context;
        context.recorder.busy.fetch_add(1, Ordering::Relaxed);
        let prepared = self.bodies.prepare(&eventpipe_sample::clock::now());
        let body_bytes = prepared.body.len() as u64;
        let connection = &mut self.connection;
        let exchange = async {
            let open = match connection {
                Some(open) => open,
                None => connection.insert(Connection::open(&context.target).await?),
            };
            let sent = Instant::now();
            let answer = open
                .exchange(&context.target, prepared.body, context.timeout)
                .await;
            Ok::<_, crate::client::ExchangeError>((sent, answer))
        };
        let outcome = tokio::select! {
            outcome = exchange => outcome,
            _ = self.hard.wait_for(|stop| *stop) => {
                self.bodies.settle(UNKNOWN);
                context.recorder.interrupted();
                context.recorder.busy.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
        };
        let done = Instant::now();
        let (sent, answer) = match outcome {
            Ok((sent, answer)) => (sent, answer),
            Err(connect) => (done, Err(connect)),
        };
        let (status, received) = match answer {
            Ok(answer) => (answer.status, answer.bytes),
            Err(error) => {
                self.connection = None;
                context.recorder.error(&error.to_string());
                (0, 0)
            }
        };
        let accepted = context.success.contains(&status);
        let outcome = if accepted {
            ACCEPTED
        } else if (400..500).contains(&status) {
            REJECTED
        } else {
            UNKNOWN
        };
        let ok = if prepared.valid {
            accepted
        } else {
            status == 422
        };
        self.bodies.settle(outcome);
        if let Some(control) = &context.control {
            control.count(self.bodies.seqs.len() as u64, outcome);
        }
        if outcome == ACCEPTED
            && let (Some(sampler), Some(seq)) = (&context.sampler, self.bodies.seqs.first())
        {
            sampler.offer(*seq, done);
        }
        context.recorder.record(
            self.id,
            &Sample {
                latency: done - intended.min(sent),
                service: done - sent,
                lag: sent.saturating_duration_since(intended),
                ok,
                events: self.bodies.seqs.len() as u32,
                outcome,
                sent: context.target.head_bytes + body_bytes,
                received,
            },
        );
        context.recorder.busy.fetch_sub(1, Ordering::Relaxed);
        true
    }
}

/// Starts `count` VUs numbered from `first`, connected, concurrently.
async fn ready_vus(
    context: &Arc<Context>,
    first: usize,
    count: usize,
    hard: &watch::Receiver<bool>,
) -> Vec<Vu> {
    join_all((first..first + count).map(|id| Vu::new(id, context.clone(), hard.clone()))).await
}

type Idle = Arc<Mutex<Vec<usize>>>;

fn push_idle(idle: &Idle, id: usize) {
    idle.lock().unwrap_or_else(PoisonError::into_inner).push(id);
}

async fn open_vu(mut vu: Vu, mut jobs: mpsc::Receiver<Instant>, idle: Idle) -> Tally {
    push_idle(&idle, vu.id);
    while let Some(intended) = jobs.recv().await {
        if !vu.iterate(intended).await {
            break;
        }
        push_idle(&idle, vu.id);
    }
    vu.bodies.tally
}

async fn open(
    context: Arc<Context>,
    schedule: impl Iterator<Item = Duration> + Send + 'static,
    pre_allocated: u32,
    max_vus: u32,
    hard: watch::Receiver<bool>,
) -> (Instant, Vec<JoinHandle<Tally>>) {
    let max_vus = max_vus.max(1) as usize;
    let idle: Idle = Arc::new(Mutex::new(Vec::with_capacity(max_vus)));
    let mut senders = Vec::with_capacity(max_vus);
    let mut receivers = Vec::with_capacity(max_vus);
    for _ in 0..max_vus {
        let (tx, rx) = mpsc::channel(1);
        senders.push(tx);
        receivers.push(Some(rx));
    }
    let handles = Arc::new(Mutex::new(Vec::new()));
    let pre_allocated = (pre_allocated as usize).clamp(1, max_vus);
    for vu in ready_vus(&context, 0, pre_allocated, &hard).await {
        let jobs = receivers[vu.id].take();
        if let Some(jobs) = jobs {
            let handle = tokio::spawn(open_vu(vu, jobs, idle.clone()));
            handles
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
    }
    while idle.lock().unwrap_or_else(PoisonError::into_inner).len() < pre_allocated {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let runtime = tokio::runtime::Handle::current();
    let allocated = Arc::new(AtomicU64::new(pre_allocated as u64));
    let pacer = {
        let (idle, handles, context) = (idle.clone(), handles.clone(), context.clone());
        std::thread::Builder::new()
            .name("eventpipe-load-pacer".to_owned())
            .spawn(move || {
                let mut receivers = receivers;
                for offset in schedule {
                    let due = started + offset;
                    if !sleep_until(due, &context.stop) {
                        break;
                    }
                    let free = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
                    let sent = free.is_some_and(|id| senders[id].try_send(due).is_ok());
                    if sent {
                        continue;
                    }
                    context.recorder.dropped();
                    // Like k6: a start with no free VU is dropped, and a new
                    // VU is made ready for the ones to come, up to maxVUs.
                    let id = allocated.load(Ordering::Relaxed) as usize;
                    if id < max_vus
                        && let Some(jobs) = receivers[id].take()
                    {
                        allocated.store(id as u64 + 1, Ordering::Relaxed);
                        let (context, idle, hard) = (context.clone(), idle.clone(), hard.clone());
                        let handle = runtime.spawn(async move {
                            let vu = Vu::new(id, context, hard).await;
                            open_vu(vu, jobs, idle).await
                        });
                        handles
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(handle);
                    }
                }
                // Dropping the senders tells idle VUs there is no more work.
                drop(senders);
            })
    };
    if let Ok(pacer) = pacer {
        let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    }
    let handles = std::mem::take(&mut *handles.lock().unwrap_or_else(PoisonError::into_inner));
    (started, handles)
}

/// Sleeps until `due`, in slices short enough to notice `stop`. False if
/// stopped.
fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

async fn closed(
    context: Arc<Context>,
    vus: u32,
    duration: Duration,
    hard: watch::Receiver<bool>,
) -> (Instant, Vec<JoinHandle<Tally>>) {
    let ready = ready_vus(&context, 0, vus.max(1) as usize, &hard).await;
    let started = Instant::now();
    let deadline = started + duration;
    let handles = ready
        .into_iter()
        .map(|mut vu| {
            let stop = context.stop.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    if !vu.iterate(Instant::now()).await {
                        break;
                    }
                }
                vu.bodies.tally
            })
        })
        .collect();
    // The caller's graceful stop counts from the end of the duration (or
    // from an interruption).
    while Instant::now() < deadline && !context.stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
    (started, handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_ends_the_sleep() {
        let stop = AtomicBool::new(true);
        assert!(!sleep_until(
            Instant::now() + Duration::from_secs(60),
            &stop
        ));
        let stop = AtomicBool::new(false);
        assert!(sleep_until(
            Instant::now() + Duration::from_millis(5),
            &stop
        ));
    }
}
