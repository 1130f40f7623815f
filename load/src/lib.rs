//! `eventpipe-load`: a k6-style load generator for eventpipe's ingestion API
//! that also audits delivery. [`config`] reads and checks the settings,
//! [`executor`] runs VUs on a schedule, [`stats`] and [`live`] record and
//! aggregate, [`audit`] compares PostgreSQL with the [`ledger`], and
//! [`report`] prints and exports the result. [`run`] ties them together.

pub use eventpipe_sample::{clock, mix, random};

pub mod audit;
pub mod bodies;
pub mod client;
pub mod config;
pub mod control;
pub mod duration;
pub mod executor;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod null_server;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod thresholds;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};

use crate::bodies::BodySource;
use crate::client::Target;
use crate::config::{Config, Executor, InvalidConfig};
use crate::control::{Control, LiveSchedule};
use crate::executor::{Context, Plan};
use crate::ledger::{Blocks, RunIds};
use crate::metrics::{Snapshot, Value};
use crate::null_server::NullServer;
use crate::stats::Recorder;
use eventpipe_sample::mix::Templates;

/// How a run ended, as k6's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every threshold held.
    Passed = 0,
    /// A threshold failed (also when `abortOnFail` stopped the test).
    ThresholdsFailed = 99,
    /// The configuration was invalid.
    InvalidConfig = 104,
    /// Interrupted by a signal.
    Interrupted = 105,
}

/// The result of a run, for callers that want more than the exit code.
#[derive(Debug)]
pub struct Finished {
    /// The exit code.
    pub exit: Exit,
    /// Every metric, audit included.
    pub snapshot: Snapshot,
    /// The audit, if it ran.
    pub audit: Option<audit::Report>,
    /// Why the generator was the limit, if it was.
    pub generator_bound: Vec<String>,
    /// The run's ids and what happened to each event, to audit again.
    pub ids: RunIds,
    /// The ledger.
    pub ledger: ledger::Ledger,
}

/// Runs the test `config` describes, prints the summary, writes the
/// exports. Stops early when `interrupt` resolves (exit 105).
pub async fn run(
    config: Config,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Finished> {
    run_controlled(config, None, interrupt).await
}

/// [`run`], paced by `control` when given (a round of `--forever
/// --control`).
async fn run_controlled(
    config: Config,
    control: Option<Arc<Control>>,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Finished> {
    let null_server = match config.calibrate {
        true => Some(
            NullServer::start()
                .await
                .context("starting the calibration server")?,
        ),
        false => None,
    };
    let url = null_server
        .as_ref()
        .map_or(config.url.clone(), NullServer::url);
    let target = Target::resolve(&url, config.api_key.as_deref(), config.gzip)
        .await
        .map_err(|e| InvalidConfig(format!("url: {e}")))?;
    let ids = RunIds::random();
    let source = Arc::new(BodySource {
        templates: Templates::build(&config.shape),
        shape: config.shape.clone(),
        ids,
        blocks: Blocks::default(),
        gzip: config.gzip,
    });
    let mut audit_connection = match &config.audit {
        Some(a) => Some(audit::connect(&a.database_url).await?),
        None => None,
    };
    let recorder = Arc::new(Recorder::new(config.threads * 8));
    let stop = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (stop, interrupted) = (stop.clone(), interrupted.clone());
        tokio::spawn(async move {
            interrupt.await;
            interrupted.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        });
    }
    let (poller_stop, poller_stopped) = watch::channel(false);
    let mut poller = None;
    let sampler = match &config.audit {
        Some(a) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let connection = audit::connect(&a.database_url).await?;
            poller = Some(tokio::spawn(audit::watch_visibility(
                connection,
                rx,
                recorder.clone(),
                poller_stopped,
            )));
            Some(audit::Sampler::new(ids, a.sample_every, tx))
        }
        None => None,
    };
    let (plan, expected) = match (&config.executor, &control) {
        (
            Executor::Arrivals {
                schedule,
                pre_allocated,
                max_vus,
                ..
            },
            Some(control),
        ) => (
            Plan::Live {
                schedule: LiveSchedule::new(control.clone(), schedule.duration(), stop.clone()),
                pre_allocated: *pre_allocated,
                max_vus: *max_vus,
            },
            None,
        ),
        (
            Executor::Arrivals {
                schedule,
                pre_allocated,
                max_vus,
                ..
            },
            None,
        ) => (
            Plan::Arrivals {
                schedule: schedule.clone(),
                pre_allocated: *pre_allocated,
                max_vus: *max_vus,
            },
            Some(schedule.clone()),
        ),
        (Executor::Vus { vus, duration }, _) => (
            Plan::Vus {
                vus: *vus,
                duration: *duration,
            },
            None,
        ),
    };
    let open_model = matches!(plan, Plan::Arrivals { .. } | Plan::Live { .. });
    let timeseries = match &config.timeseries {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("creating the time series file {}", path.display()))?,
        ),
        None => None,
    };
    let context = Arc::new(Context {
        target,
        bodies: source,
        recorder: recorder.clone(),
        success: config.success.clone(),
        timeout: config.timeout,
        stop: stop.clone(),
        sampler,
        control,
    });
    let mut live = live::Live::new(
        recorder.clone(),
        Instant::now(),
        timeseries,
        config.progress,
        expected,
        &config.thresholds,
        stop.clone(),
    );
    let mut execution = tokio::spawn(executor::execute(context, plan, config.graceful_stop));
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let finished = loop {
        tokio::select! {
            finished = &mut execution => break finished.context("the executor panicked")?,
            _ = ticks.tick() => live.tick(),
        }
    };
    let mut snapshot = live.finish();

    let mut report = None;
    if let (Some(settings), Some(connection)) = (&config.audit, audit_connection.as_mut()) {
        let found = audit::audit(connection, &ids, &finished.ledger, settings.drain).await?;
        let _ = poller_stop.send(true);
        if let Some(poller) = poller.take() {
            let _ = poller.await;
        }
        let late = recorder.drain();
        if let Some(Value::Trend(h)) = snapshot.values.get_mut(metrics::EVENT_VISIBILITY_LATENCY) {
            let _ = h.add(&late.visibility);
        } else if !late.visibility.is_empty() {
            snapshot.values.insert(
                metrics::EVENT_VISIBILITY_LATENCY,
                Value::Trend(late.visibility),
            );
        }
        for (name, n) in [
            (metrics::EVENTS_LOST, found.lost),
            (metrics::EVENTS_DUPLICATED, found.duplicated),
            (metrics::EVENTS_REJECTED_STORED, found.rejected_stored),
        ] {
            snapshot.values.insert(name, Value::Counter(n as f64));
        }
        report = Some(found);
    }

    let verdicts: Vec<_> = config
        .thresholds
        .iter()
        .map(|t| (t, t.evaluate(&snapshot)))
        .collect();
    let generator_bound = if config.calibrate {
        Vec::new()
    } else {
        report::generator_bound(&snapshot, open_model)
    };
    let was_interrupted = interrupted.load(Ordering::Relaxed);
    let cut_short = if was_interrupted {
        Some("interrupted".to_owned())
    } else {
        live.aborted.clone()
    };
    let errors = recorder.errors();
    let outcome = report::Outcome {
        executor: config.describe(),
        target: describe_target(&config, &url),
        snapshot: &snapshot,
        thresholds: verdicts.clone(),
        audit: report.as_ref(),
        generator_bound: generator_bound.clone(),
        errors: &errors,
        cut_short,
    };
    let mut text = report::text(&outcome);
    if config.calibrate {
        text.push_str(&calibration(&snapshot, open_model, config.threads));
    }
    if config.summary {
        println!("{text}");
    }
    if let Some(path) = &config.summary_export {
        let tty = (
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        );
        let json = report::export(&outcome, tty);
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    let exit = if was_interrupted {
        Exit::Interrupted
    } else if verdicts.iter().any(|(_, v)| !v.ok) {
        Exit::ThresholdsFailed
    } else {
        Exit::Passed
    };
    Ok(Finished {
        exit,
        snapshot,
        audit: report,
        generator_bound,
        ids,
        ledger: finished.ledger,
    })
}

/// The calibration verdict: the ceiling (closed model), or whether the
/// schedule was kept with nothing but the generator to slow it (open model).
fn calibration(snapshot: &Snapshot, open_model: bool, threads: usize) -> String {
    let rate = snapshot
        .aggregate(metrics::HTTP_REQS, "rate")
        .unwrap_or(0.0);
    let events = snapshot
        .aggregate(metrics::EVENTS_SENT, "rate")
        .unwrap_or(0.0);
    if open_model {
        let lag = snapshot
            .aggregate(metrics::SCHEDULE_LAG, "p(99)")
            .unwrap_or(0.0);
        let dropped = snapshot
            .aggregate(metrics::DROPPED_ITERATIONS, "count")
            .unwrap_or(0.0);
        format!(
            "  calibration: against a do-nothing server in the same process ({threads} runtime threads) the generator sustained {rate:.0} requests/s ({events:.0} events/s) with schedule lag p(99) {} and {dropped} dropped starts\n",
            report::time(lag)
        )
    } else {
        format!(
            "  calibration: the generator's ceiling on this machine is {rate:.0} requests/s ({events:.0} events/s) against a do-nothing server in the same process ({threads} runtime threads)\n"
        )
    }
}

fn describe_target(config: &Config, url: &str) -> String {
    let shape = &config.shape;
    format!(
        "{url} · events/request {} · {} users · mix {} · invalid {} · duplicates {}{}",
        shape.batch,
        shape.users,
        shape.mix,
        shape.invalid_fraction,
        shape.duplicate_fraction,
        if config.gzip { " · gzip" } else { "" }
    )
}

/// Runs `config` round after round until `interrupt` resolves (`--forever`):
/// each round is a whole test with its summary; a round that cannot start
/// (the API unreachable) is retried after a pause. Returns the round the
/// interrupt cut short (`None` if it came while waiting to retry).
pub async fn run_forever(
    config: Config,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<Finished>> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        interrupt.await;
        let _ = stop.send(true);
    });
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let control = match config.control {
        Some(addr) => Some(start_controls(&config, addr).await?),
        None => None,
    };
    for round in 1u64.. {
        match run_controlled(config.clone(), control.clone(), wait(stopped.clone())).await {
            Ok(finished) if finished.exit == Exit::Interrupted || *stopped.borrow() => {
                return Ok(Some(finished));
            }
            Ok(finished) => eprintln!("round {round} ended: {:?}; next round", finished.exit),
            Err(e) => {
                eprintln!("round {round} could not run: {e:#}; trying again in 5 s");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    () = wait(stopped.clone()) => return Ok(None),
                }
            }
        }
    }
    unreachable!("the rounds never run out")
}

/// Starts the controls of `--control ADDR` at the configured rate.
async fn start_controls(
    config: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Arc<Control>> {
    let mean_batch = config.shape.batch.mean();
    let requests = match &config.executor {
        Executor::Arrivals { schedule, .. } => schedule.rate_at(Duration::ZERO),
        Executor::Vus { .. } => 0.0,
    };
    let described = serde_json::json!({
        "mix": config.shape.mix.to_string(),
        "batch_size": config.shape.batch.to_string(),
        "users": config.shape.users,
        "url": config.url,
    });
    let control = Arc::new(Control::new(requests * mean_batch, mean_batch, described));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the controls to {addr} (--control)"))?;
    let bound = listener.local_addr()?;
    control.clone().serve(listener);
    eprintln!(
        "controls: http://{bound} (GET /, PUT /rate, POST /burst, GET /health, GET /metrics)"
    );
    Ok(control)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
