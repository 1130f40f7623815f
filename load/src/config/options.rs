//! The run's settings as given: command-line flags (most with an
//! environment fallback) and an optional scenario file (TOML or JSON, the
//! same settings in camelCase, as in k6's options), the flags winning.
//! Their defaults are in [`super::defaults`], which `--help` shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

use super::defaults;
use super::invalid::{InvalidConfig, invalid};
use crate::duration;
use eventpipe_sample::mix::{BatchSizes, Mix};

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
    #[arg(long, env = "LOAD_URL")]
    pub url: Option<String>,

    /// API key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "LOAD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// constant-arrival-rate, ramping-arrival-rate or constant-vus.
    #[arg(long)]
    pub executor: Option<String>,

    /// Iterations (requests) per time unit, for constant-arrival-rate.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Events (not requests) per time unit, for constant-arrival-rate:
    /// the request rate is this over the mean batch size. Instead of --rate.
    #[arg(long, env = "LOAD_EVENTS_RATE", conflicts_with = "rate")]
    pub events_rate: Option<f64>,

    /// The unit of --rate, --start-rate and stage targets.
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub time_unit: Option<Duration>,

    /// How long constant-arrival-rate and constant-vus run.
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub duration: Option<Duration>,

    /// ramping-arrival-rate stages: DURATION:TARGET,... (e.g.
    /// 30s:1000,1m:1000,10s:0); the rate moves linearly to each target.
    #[arg(long)]
    pub stages: Option<Stages>,

    /// ramping-arrival-rate's rate at the start.
    #[arg(long)]
    pub start_rate: Option<f64>,

    /// VUs (connections) made ready before an arrival-rate test starts.
    #[arg(long = "pre-allocated-vus")]
    #[serde(rename = "preAllocatedVUs")]
    pub pre_allocated_vus: Option<u32>,

    /// VUs an arrival-rate test may grow to; a start with none free is
    /// dropped.
    #[arg(long = "max-vus")]
    #[serde(rename = "maxVUs")]
    pub max_vus: Option<u32>,

    /// VUs for constant-vus.
    #[arg(long)]
    pub vus: Option<u32>,

    /// How long iterations in flight may finish after the end.
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub graceful_stop: Option<Duration>,

    /// A request's time limit.
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
    #[arg(long = "success-status", value_delimiter = ',')]
    #[serde(rename = "successStatuses")]
    pub success_statuses: Option<Vec<u16>>,

    /// Event types and weights, TYPE=WEIGHT,...
    #[arg(long)]
    pub mix: Option<Mix>,

    /// Distinct users events are spread over.
    #[arg(long)]
    pub users: Option<u64>,

    /// Events per request, with weights: 1 (single events), 100, or
    /// 1:20,100:70,1000:10.
    #[arg(long)]
    pub batch_size: Option<BatchSizes>,

    /// Share of events made invalid; their request expects 422.
    #[arg(long)]
    pub invalid_fraction: Option<f64>,

    /// Share of events that retry an already accepted id.
    #[arg(long)]
    pub duplicate_fraction: Option<f64>,

    /// Gzip request bodies (Content-Encoding: gzip).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub gzip: Option<bool>,

    /// Seed for the generated bodies.
    #[arg(long)]
    pub seed: Option<u64>,

    /// PostgreSQL URL of the events table: audit delivery after the run.
    #[arg(long, env = "LOAD_AUDIT_DATABASE_URL", hide_env_values = true)]
    pub audit_database_url: Option<String>,

    /// How long the audit waits for accepted events to be stored.
    #[arg(long, value_parser = duration::parse)]
    #[serde(default, deserialize_with = "duration::serde_text::deserialize")]
    pub audit_drain: Option<Duration>,

    /// Sample one accepted event per this long for the visibility latency.
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

    /// Runtime worker threads.
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
        let matches = Options::with_defaults()
            .try_get_matches_from(all)
            .map_err(|e| invalid(e.to_string()))?;
        Options::from_arg_matches(&matches).map_err(|e| invalid(e.to_string()))
    }

    /// The command line, its help showing each default from
    /// [`defaults::shown`].
    pub fn with_defaults() -> clap::Command {
        defaults::shown()
            .into_iter()
            .fold(Options::command(), |command, (id, default)| {
                command.mut_arg(id, |arg| {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    arg.help(format!("{help} [default: {default}]"))
                })
            })
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
