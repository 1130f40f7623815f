//! The run's configuration: command-line flags (most with an environment
//! fallback), an optional scenario file (TOML or JSON, the same settings in
//! camelCase, as in k6's options), and defaults, in that order of
//! precedence. Everything is checked here, before anything runs; a problem
//! is an [`InvalidConfig`] naming the setting (exit code 104).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::duration;
use crate::metrics::definition;
use crate::schedule::{Piece, Schedule};
use crate::thresholds::Threshold;
use eventpipe_sample::mix::{BatchSizes, MAX_USERS, Mix, Shape};

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct InvalidConfig(pub String);

fn invalid(message: impl Into<String>) -> InvalidConfig {
    InvalidConfig(message.into())
}

/// Command-line flags; a scenario file holds the same settings.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(
    name = "eventpipe-load",
    version,
    about = "A k6-style load generator for eventpipe's ingestion API that audits delivery.",
    long_about = "A k6-style load generator for eventpipe's ingestion API: open-model (arrival-rate) and closed-model (constant-vus) executors, coordinated-omission-corrected HDR latencies, k6 thresholds and exit codes (0 pass, 99 threshold failed, 104 invalid configuration, 105 interrupted), a k6-shaped JSON summary, and a delivery audit against PostgreSQL: nothing accepted lost, nothing stored twice.\n\nSettings come from flags, then environment variables, then --scenario FILE (TOML or JSON with the same settings in camelCase), then defaults.",
    after_help = metric_help()
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// A scenario file (TOML or JSON) with any of these settings.
    #[arg(long, env = "LOAD_SCENARIO", value_name = "FILE")]
    #[serde(skip)]
    pub scenario: Option<PathBuf>,

    /// Base URL of the API (`/events` is added unless the URL has a path).
    /// [default: http://127.0.0.1:8080]
    #[arg(long, env = "LOAD_URL")]
    pub url: Option<String>,

    /// API key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "LOAD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// constant-arrival-rate, ramping-arrival-rate or constant-vus.
    /// [default: constant-arrival-rate]
    #[arg(long)]
    pub executor: Option<String>,

    /// Iterations (requests) per time unit, for constant-arrival-rate.
    /// [default: 1000]
    #[arg(long)]
    pub rate: Option<f64>,

    /// Events (not requests) per time unit, for constant-arrival-rate:
    /// the request rate is this over the mean batch size. Instead of --rate.
    #[arg(long, env = "LOAD_EVENTS_RATE", conflicts_with = "rate")]
    pub events_rate: Option<f64>,

    /// The unit of --rate, --start-rate and stage targets. [default: 1s]
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub time_unit: Option<Duration>,

    /// How long constant-arrival-rate and constant-vus run. [default: 30s]
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub duration: Option<Duration>,

    /// ramping-arrival-rate stages: DURATION:TARGET,... (e.g.
    /// 30s:1000,1m:1000,10s:0); the rate moves linearly to each target.
    #[arg(long)]
    pub stages: Option<Stages>,

    /// ramping-arrival-rate's rate at the start. [default: 0]
    #[arg(long)]
    pub start_rate: Option<f64>,

    /// VUs (connections) made ready before an arrival-rate test starts.
    /// [default: 64]
    #[arg(long = "pre-allocated-vus")]
    #[serde(rename = "preAllocatedVUs")]
    pub pre_allocated_vus: Option<u32>,

    /// VUs an arrival-rate test may grow to; a start with none free is
    /// dropped. [default: 512]
    #[arg(long = "max-vus")]
    #[serde(rename = "maxVUs")]
    pub max_vus: Option<u32>,

    /// VUs for constant-vus. [default: 32]
    #[arg(long)]
    pub vus: Option<u32>,

    /// How long iterations in flight may finish after the end. [default: 30s]
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub graceful_stop: Option<Duration>,

    /// A request's time limit. [default: 60s]
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub timeout: Option<Duration>,

    /// A threshold, 'METRIC: EXPRESSION[, abortOnFail]', e.g.
    /// 'http_req_duration: p(95)<200'. Repeatable.
    #[arg(long = "threshold", value_name = "THRESHOLD")]
    #[serde(skip)]
    pub threshold_flags: Vec<String>,

    /// Scenario files only: thresholds by metric, as in k6.
    #[arg(skip)]
    pub thresholds: Option<BTreeMap<String, Vec<ThresholdSpec>>>,

    /// Statuses that mean a valid request succeeded (comma-separated).
    /// [default: 202]
    #[arg(long = "success-status", value_delimiter = ',')]
    #[serde(rename = "successStatuses")]
    pub success_statuses: Option<Vec<u16>>,

    /// Event types and weights, e.g. login=25,purchase=15,api_call=30,
    /// heartbeat=20,click=7,file_access=3 (the default).
    #[arg(long)]
    pub mix: Option<Mix>,

    /// Distinct users events are spread over. [default: 1000]
    #[arg(long)]
    pub users: Option<u64>,

    /// Events per request, with weights: 1 (single events), 100, or
    /// 1:20,100:70,1000:10. [default: 1]
    #[arg(long)]
    pub batch_size: Option<BatchSizes>,

    /// Share of events made invalid; their request expects 422. [default: 0]
    #[arg(long)]
    pub invalid_fraction: Option<f64>,

    /// Share of events that retry an already accepted id. [default: 0]
    #[arg(long)]
    pub duplicate_fraction: Option<f64>,

    /// Gzip request bodies (Content-Encoding: gzip).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub gzip: Option<bool>,

    /// Seed for the generated bodies. [default: 1]
    #[arg(long)]
    pub seed: Option<u64>,

    /// PostgreSQL URL of the events table: audit delivery after the run.
    #[arg(long, env = "LOAD_AUDIT_DATABASE_URL", hide_env_values = true)]
    pub audit_database_url: Option<String>,

    /// How long the audit waits for accepted events to be stored. [default: 60s]
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub audit_drain: Option<Duration>,

    /// Sample one accepted event per this long for the visibility latency.
    /// [default: 100ms]
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub visibility_sample_every: Option<Duration>,

    /// Write the end-of-test summary as k6-shaped JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_export: Option<PathBuf>,

    /// Write one aggregated point per second per metric as NDJSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub timeseries: Option<PathBuf>,

    /// No live progress line (it is shown only on a terminal anyway).
    #[arg(long)]
    #[serde(skip)]
    pub no_progress: bool,

    /// Print no end-of-test summary (the exports are still written).
    #[arg(long)]
    #[serde(skip)]
    pub no_summary: bool,

    /// Measure the generator's own ceiling against a built-in do-nothing
    /// HTTP server (constant-vus unless --executor says otherwise; no audit).
    #[arg(long)]
    #[serde(skip)]
    pub calibrate: bool,

    /// Runtime worker threads. [default: the machine's cores]
    #[arg(long, env = "LOAD_THREADS")]
    pub threads: Option<usize>,

    /// Run the test again and again until interrupted, each round with
    /// its own summary and thresholds (memory stays that of one round); an
    /// unreachable API is waited for. For sample traffic that never stops.
    #[arg(long, env = "LOAD_FOREVER")]
    #[serde(skip)]
    pub forever: bool,

    /// With --forever and constant-arrival-rate: serve controls on ADDR
    /// (host:port): `GET /` the settings and totals, `PUT /rate` the events
    /// per second, `POST /burst` extra events over a while, `GET /health`,
    /// `GET /metrics` (Prometheus).
    #[arg(long, env = "LOAD_CONTROL_ADDR", value_name = "ADDR")]
    #[serde(skip)]
    pub control: Option<std::net::SocketAddr>,
}

/// A threshold in a scenario file: a string, or k6's object form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ThresholdSpec {
    /// `"p(95)<200"`.
    Plain(String),
    /// `{ threshold = "p(95)<200", abortOnFail = true, delayAbortEval = "10s" }`.
    Full {
        /// The expression.
        threshold: String,
        /// Stop the test as soon as it fails.
        #[serde(default, rename = "abortOnFail")]
        abort_on_fail: bool,
        /// Not before this long into the test.
        #[serde(
            default,
            rename = "delayAbortEval",
            deserialize_with = "duration::serde_text::deserialize"
        )]
        delay_abort_eval: Option<Duration>,
    },
}

/// ramping-arrival-rate stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages(pub Vec<(Duration, f64)>);

impl FromStr for Stages {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|stage| {
                let (d, target) = stage
                    .split_once(':')
                    .ok_or_else(|| format!("stage {stage:?} must be DURATION:TARGET"))?;
                let target: f64 = target
                    .trim()
                    .parse()
                    .map_err(|_| format!("stage {stage:?}: target must be a number"))?;
                Ok((
                    duration::parse(d).map_err(|e| format!("stage {stage:?}: {e}"))?,
                    target,
                ))
            })
            .collect::<Result<_, _>>()
            .map(Stages)
    }
}

impl<'de> Deserialize<'de> for Stages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Stage {
            #[serde(deserialize_with = "duration::serde_text::deserialize")]
            duration: Option<Duration>,
            target: f64,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            List(Vec<Stage>),
        }
        match Form::deserialize(d)? {
            Form::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Form::List(list) => Ok(Stages(
                list.into_iter()
                    .map(|s| (s.duration.unwrap_or_default(), s.target))
                    .collect(),
            )),
        }
    }
}

/// Which executor, with its settings resolved.
#[derive(Debug, Clone)]
pub enum Executor {
    /// Open model on a schedule.
    Arrivals {
        /// The executor's name.
        name: &'static str,
        /// When iterations start.
        schedule: Schedule,
        /// VUs ready at the start.
        pre_allocated: u32,
        /// VUs at most.
        max_vus: u32,
    },
    /// Closed model.
    Vus {
        /// VUs.
        vus: u32,
        /// How long.
        duration: Duration,
    },
}

/// The delivery audit's settings.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The database with the events table.
    pub database_url: String,
    /// How long to wait for accepted events to be stored.
    pub drain: Duration,
    /// One visibility sample per this long.
    pub sample_every: Duration,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API's URL.
    pub url: String,
    /// API key, if any.
    pub api_key: Option<String>,
    /// The executor.
    pub executor: Executor,
    /// In-flight iterations' grace at the end.
    pub graceful_stop: Duration,
    /// A request's time limit.
    pub timeout: Duration,
    /// Thresholds, in the order given.
    pub thresholds: Vec<Threshold>,
    /// Statuses that mean success.
    pub success: Vec<u16>,
    /// What the bodies look like.
    pub shape: Shape,
    /// Gzip bodies.
    pub gzip: bool,
    /// The audit, if a database was given.
    pub audit: Option<Audit>,
    /// Where to write the JSON summary.
    pub summary_export: Option<PathBuf>,
    /// Where to write the time series.
    pub timeseries: Option<PathBuf>,
    /// Whether to show the progress line.
    pub progress: bool,
    /// Whether to print the summary.
    pub summary: bool,
    /// Calibration mode.
    pub calibrate: bool,
    /// Runtime threads.
    pub threads: usize,
    /// Repeat until interrupted.
    pub forever: bool,
    /// Where to serve the controls (with `forever`).
    pub control: Option<std::net::SocketAddr>,
}

impl Options {
    /// Parses command-line arguments (without the program name), for
    /// programs that drive the generator as a library.
    pub fn from_args<I, T>(args: I) -> Result<Self, InvalidConfig>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let all = std::iter::once(std::ffi::OsString::from("eventpipe-load"))
            .chain(args.into_iter().map(Into::into));
        Options::try_parse_from(all).map_err(|e| invalid(e.to_string()))
    }

    /// Reads a scenario file (TOML unless it ends in `.json`).
    pub fn from_file(path: &Path) -> Result<Self, InvalidConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("scenario {}: {e}", path.display())))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| invalid(format!("scenario {}: {e}", path.display())))
    }

    /// Fills what these options leave unset from `file`.
    pub fn or(self, file: Options) -> Options {
        macro_rules! pick {
            ($($field:ident),*) => { Options { $($field: self.$field.or(file.$field),)*
                scenario: self.scenario,
                control: self.control,
                threshold_flags: self.threshold_flags,
                no_progress: self.no_progress,
                no_summary: self.no_summary,
                calibrate: self.calibrate,
                forever: self.forever,
            } };
        }
        pick!(
            url,
            api_key,
            executor,
            rate,
            events_rate,
            time_unit,
            duration,
            stages,
            start_rate,
            pre_allocated_vus,
            max_vus,
            vus,
            graceful_stop,
            timeout,
            thresholds,
            success_statuses,
            mix,
            users,
            batch_size,
            invalid_fraction,
            duplicate_fraction,
            gzip,
            seed,
            audit_database_url,
            audit_drain,
            visibility_sample_every,
            summary_export,
            timeseries,
            threads
        )
    }

    /// Checks everything and resolves defaults.
    pub fn resolve(self) -> Result<Config, InvalidConfig> {
        let options = match &self.scenario {
            Some(path) => {
                let file = Options::from_file(path)?;
                self.or(file)
            }
            None => self,
        };
        options.check()
    }

    fn check(self) -> Result<Config, InvalidConfig> {
        let time_unit = self.time_unit.unwrap_or(Duration::from_secs(1));
        if time_unit.is_zero() {
            return Err(invalid("timeUnit must be longer than zero"));
        }
        let per_second = |rate: f64, name: &str| {
            if rate.is_finite() && rate >= 0.0 {
                Ok(rate / time_unit.as_secs_f64())
            } else {
                Err(invalid(format!("{name} must be a number ≥ 0, got {rate}")))
            }
        };
        let duration = self.duration.unwrap_or(Duration::from_secs(30));
        let pre_allocated = self.pre_allocated_vus.unwrap_or(64);
        let max_vus = self.max_vus.unwrap_or(512.max(pre_allocated));
        let calibrating = self.calibrate;
        let executor_name = self.executor.as_deref().unwrap_or(if calibrating {
            "constant-vus"
        } else {
            "constant-arrival-rate"
        });
        let executor = match executor_name {
            "constant-arrival-rate" | "ramping-arrival-rate" => {
                if max_vus == 0 || pre_allocated > max_vus {
                    return Err(invalid(format!(
                        "maxVUs ({max_vus}) must be ≥ 1 and ≥ preAllocatedVUs ({pre_allocated})"
                    )));
                }
                let (name, pieces) = if executor_name == "constant-arrival-rate" {
                    let rate = match self.events_rate {
                        Some(events) => {
                            let mean = self.batch_size.as_ref().map_or(1.0, BatchSizes::mean);
                            per_second(events, "eventsRate")? / mean
                        }
                        None => per_second(self.rate.unwrap_or(1000.0), "rate")?,
                    };
                    if rate == 0.0 || duration.is_zero() {
                        return Err(invalid(
                            "constant-arrival-rate needs a rate > 0 and a duration > 0",
                        ));
                    }
                    (
                        "constant-arrival-rate",
                        vec![Piece {
                            duration,
                            from: rate,
                            to: rate,
                        }],
                    )
                } else {
                    let stages = self.stages.ok_or_else(|| {
                        invalid(
                            "ramping-arrival-rate needs stages (e.g. --stages 30s:1000,1m:1000)",
                        )
                    })?;
                    let mut from = per_second(self.start_rate.unwrap_or(0.0), "startRate")?;
                    let mut pieces = Vec::new();
                    for (i, (length, target)) in stages.0.into_iter().enumerate() {
                        let to = per_second(target, &format!("stages[{i}].target"))?;
                        if length.is_zero() {
                            return Err(invalid(format!(
                                "stages[{i}].duration must be longer than zero"
                            )));
                        }
                        pieces.push(Piece {
                            duration: length,
                            from,
                            to,
                        });
                        from = to;
                    }
                    if pieces.is_empty() {
                        return Err(invalid("stages is empty"));
                    }
                    ("ramping-arrival-rate", pieces)
                };
                Executor::Arrivals {
                    name,
                    schedule: Schedule::new(pieces),
                    pre_allocated,
                    max_vus,
                }
            }
            "constant-vus" => {
                let vus = self.vus.unwrap_or(32);
                if vus == 0 || duration.is_zero() {
                    return Err(invalid("constant-vus needs vus ≥ 1 and a duration > 0"));
                }
                Executor::Vus { vus, duration }
            }
            other => {
                return Err(invalid(format!(
                    "executor {other:?} is not one of constant-arrival-rate, ramping-arrival-rate, constant-vus"
                )));
            }
        };

        let audit = self
            .audit_database_url
            .filter(|_| !calibrating)
            .map(|database_url| Audit {
                database_url,
                drain: self.audit_drain.unwrap_or(Duration::from_secs(60)),
                sample_every: self
                    .visibility_sample_every
                    .unwrap_or(Duration::from_millis(100)),
            });
        let mut thresholds = Vec::new();
        for flag in &self.threshold_flags {
            thresholds.push(Threshold::parse_flag(flag).map_err(|e| invalid(e.to_string()))?);
        }
        for (metric, specs) in self.thresholds.unwrap_or_default() {
            for spec in specs {
                let (expression, abort, delay) = match spec {
                    ThresholdSpec::Plain(e) => (e, false, None),
                    ThresholdSpec::Full {
                        threshold,
                        abort_on_fail,
                        delay_abort_eval,
                    } => (threshold, abort_on_fail, delay_abort_eval),
                };
                let mut t =
                    Threshold::parse(&metric, &expression).map_err(|e| invalid(e.to_string()))?;
                t.abort_on_fail = abort;
                t.delay_abort_eval = delay.unwrap_or_default();
                // As in k6, a metric's thresholds are keyed by expression:
                // a flag repeating the file's is one threshold (the flag's).
                if !thresholds
                    .iter()
                    .any(|h: &Threshold| h.metric == t.metric && h.source == t.source)
                {
                    thresholds.push(t);
                }
            }
        }
        if audit.is_none()
            && let Some(t) = thresholds
                .iter()
                .find(|t| definition(&t.metric).is_some_and(|d| d.needs_audit))
        {
            return Err(invalid(format!(
                "threshold {t} needs the audit: set --audit-database-url (LOAD_AUDIT_DATABASE_URL)"
            )));
        }

        let fraction = |value: Option<f64>, name: &str| {
            let value = value.unwrap_or(0.0);
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(format!(
                    "{name} must be between 0 and 1, got {value}"
                )))
            }
        };
        let users = self.users.unwrap_or(1000);
        if users == 0 || users > MAX_USERS {
            return Err(invalid(format!(
                "users must be between 1 and {MAX_USERS}, got {users}"
            )));
        }
        let success = self.success_statuses.unwrap_or_else(|| vec![202]);
        if success.is_empty() || success.iter().any(|s| !(100..=599).contains(s)) {
            return Err(invalid(format!(
                "successStatuses must be HTTP statuses, got {success:?}"
            )));
        }
        if let Some(addr) = self.control {
            let constant = matches!(&executor, Executor::Arrivals { name, .. } if *name == "constant-arrival-rate");
            if !self.forever || !constant {
                return Err(invalid(format!(
                    "control {addr}: the controls need --forever and constant-arrival-rate (they change its rate while it runs)"
                )));
            }
        }
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
        if threads == 0 {
            return Err(invalid("threads must be ≥ 1"));
        }
        Ok(Config {
            url: self
                .url
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()),
            api_key: self.api_key.filter(|k| !k.is_empty()),
            executor,
            graceful_stop: self.graceful_stop.unwrap_or(Duration::from_secs(30)),
            timeout: self.timeout.unwrap_or(Duration::from_secs(60)),
            thresholds,
            success,
            shape: Shape {
                mix: self.mix.unwrap_or_default(),
                users,
                batch: self.batch_size.unwrap_or_else(|| BatchSizes(vec![(1, 1)])),
                invalid_fraction: fraction(self.invalid_fraction, "invalidFraction")?,
                duplicate_fraction: fraction(self.duplicate_fraction, "duplicateFraction")?,
                seed: self.seed.unwrap_or(1),
            },
            gzip: self.gzip.unwrap_or(false),
            audit,
            summary_export: self.summary_export,
            timeseries: self.timeseries,
            progress: !self.no_progress,
            summary: !self.no_summary,
            calibrate: calibrating,
            threads,
            forever: self.forever,
            control: self.control,
        })
    }
}

impl Config {
    /// One line describing the executor, for the summary.
    pub fn describe(&self) -> String {
        match &self.executor {
            Executor::Arrivals {
                name,
                schedule,
                pre_allocated,
                max_vus,
            } => format!(
                "{name}: {} iterations over {} (preAllocatedVUs {pre_allocated}, maxVUs {max_vus}, gracefulStop {})",
                schedule.total(),
                duration::format(schedule.duration()),
                duration::format(self.graceful_stop),
            ),
            Executor::Vus { vus, duration: d } => format!(
                "constant-vus: {vus} VUs for {} (gracefulStop {})",
                duration::format(*d),
                duration::format(self.graceful_stop)
            ),
        }
    }
}

fn metric_help() -> String {
    let mut help = String::from("Metrics (for --threshold):\n");
    for d in crate::metrics::CATALOG {
        help.push_str(&format!(
            "  {:<28} {:<8} {}\n",
            d.name,
            d.kind.name(),
            d.help
        ));
    }
    help.push_str("\nExit codes: 0 pass, 99 a threshold failed, 104 invalid configuration, 105 interrupted, 1 other errors.");
    help
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, InvalidConfig> {
        let mut all = vec!["eventpipe-load"];
        all.extend_from_slice(args);
        Options::try_parse_from(all)
            .map_err(|e| invalid(e.to_string()))?
            .resolve()
    }

    #[test]
    fn defaults_are_a_constant_arrival_rate() {
        let config = parse(&[]).unwrap();
        assert!(
            config
                .describe()
                .starts_with("constant-arrival-rate: 30000 iterations over 30s")
        );
        assert_eq!(config.success, vec![202]);
    }

    #[test]
    fn rates_are_per_time_unit() {
        let config = parse(&["--rate", "60", "--time-unit", "1m", "--duration", "10s"]).unwrap();
        assert!(
            config.describe().contains(": 10 iterations"),
            "{}",
            config.describe()
        );
    }

    #[test]
    fn problems_name_the_setting() {
        for (args, says) in [
            (&["--executor", "per-vu-iterations"][..], "executor"),
            (&["--executor", "ramping-arrival-rate"][..], "stages"),
            (
                &["--threshold", "http_req_duration: p95<1"][..],
                "http_req_duration",
            ),
            (&["--threshold", "events_lost: count==0"][..], "audit"),
            (&["--invalid-fraction", "2"][..], "invalidFraction"),
            (
                &["--max-vus", "1", "--pre-allocated-vus", "2"][..],
                "maxVUs",
            ),
            (&["--success-status", "999"][..], "successStatuses"),
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.contains(says), "{args:?}: {error}");
        }
    }

    #[test]
    fn a_scenario_file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            r#"
executor = "ramping-arrival-rate"
startRate = 10
stages = [{ duration = "10s", target = 100 }, { duration = "5s", target = 100 }]
maxVUs = 20
preAllocatedVUs = 5
mix = "login=1"
batchSize = "1:1,10:1"

[thresholds]
http_req_duration = ["p(95)<200", { threshold = "p(99)<500", abortOnFail = true, delayAbortEval = "5s" }]
"#,
        )
        .unwrap();
        let config = parse(&["--scenario", path.to_str().unwrap(), "--max-vus", "30"]).unwrap();
        assert!(
            config.describe().contains("maxVUs 30"),
            "{}",
            config.describe()
        );
        assert!(
            config
                .describe()
                .contains(&format!(": {} iterations", 550 + 500))
        );
        assert_eq!(config.thresholds.len(), 2);
        assert!(config.thresholds[1].abort_on_fail);
        let again = parse(&[
            "--scenario",
            path.to_str().unwrap(),
            "--threshold",
            "http_req_duration: p(95)<200",
        ])
        .unwrap();
        assert_eq!(
            again.thresholds.len(),
            2,
            "a repeated threshold is one threshold"
        );
        assert_eq!(
            config.thresholds[1].delay_abort_eval,
            Duration::from_secs(5)
        );

        std::fs::write(&path, "rat = 5\n").unwrap();
        let error = parse(&["--scenario", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("rat"), "{error}");
    }
}
