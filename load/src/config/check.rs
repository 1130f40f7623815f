//! Resolving the options: the scenario file under the flags, then every
//! setting checked and its default filled in from [`super::defaults`],
//! into a [`Config`]. A problem names the setting.

use std::path::PathBuf;
use std::time::Duration;

use eventpipe_sample::mix::{BatchSizes, MAX_USERS, Shape};

use super::defaults;
use super::invalid::{InvalidConfig, invalid};
use super::options::{Options, ThresholdSpec};
use crate::duration;
use crate::metrics::definition;
use crate::schedule::{Piece, Schedule};
use crate::thresholds::Threshold;

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
        let executor = self.executor()?;
        let calibrating = self.calibrate;
        let audit = self
            .audit_database_url
            .clone()
            .filter(|_| !calibrating)
            .map(|database_url| Audit {
                database_url,
                drain: self.audit_drain.unwrap_or(defaults::AUDIT_DRAIN),
                sample_every: self
                    .visibility_sample_every
                    .unwrap_or(defaults::VISIBILITY_SAMPLE_EVERY),
            });
        let thresholds = self.thresholds()?;
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
            let value = value.unwrap_or(defaults::FRACTION);
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(format!(
                    "{name} must be between 0 and 1, got {value}"
                )))
            }
        };
        let users = self.users.unwrap_or(defaults::USERS);
        if users == 0 || users > MAX_USERS {
            return Err(invalid(format!(
                "users must be between 1 and {MAX_USERS}, got {users}"
            )));
        }
        let success = self
            .success_statuses
            .unwrap_or_else(|| vec![defaults::SUCCESS_STATUS]);
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
        let threads = self.threads.unwrap_or_else(defaults::threads);
        if threads == 0 {
            return Err(invalid("threads must be ≥ 1"));
        }
        Ok(Config {
            url: self.url.unwrap_or_else(|| defaults::URL.to_owned()),
            api_key: self.api_key.filter(|k| !k.is_empty()),
            executor,
            graceful_stop: self.graceful_stop.unwrap_or(defaults::GRACEFUL_STOP),
            timeout: self.timeout.unwrap_or(defaults::TIMEOUT),
            thresholds,
            success,
            shape: Shape {
                mix: self.mix.unwrap_or_default(),
                users,
                batch: self.batch_size.unwrap_or_else(defaults::batch_size),
                invalid_fraction: fraction(self.invalid_fraction, "invalidFraction")?,
                duplicate_fraction: fraction(self.duplicate_fraction, "duplicateFraction")?,
                seed: self.seed.unwrap_or(defaults::SEED),
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

    /// The executor, with its schedule (rates per second) and VUs.
    fn executor(&self) -> Result<Executor, InvalidConfig> {
        let time_unit = self.time_unit.unwrap_or(defaults::TIME_UNIT);
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
        let duration = self.duration.unwrap_or(defaults::DURATION);
        let pre_allocated = self
            .pre_allocated_vus
            .unwrap_or(defaults::PRE_ALLOCATED_VUS);
        let max_vus = self.max_vus.unwrap_or(defaults::MAX_VUS.max(pre_allocated));
        let calibrating = self.calibrate;
        let executor_name = self.executor.as_deref().unwrap_or(if calibrating {
            defaults::CALIBRATION_EXECUTOR
        } else {
            defaults::EXECUTOR
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
                        None => per_second(self.rate.unwrap_or(defaults::RATE), "rate")?,
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
                    let stages = self.stages.clone().ok_or_else(|| {
                        invalid(
                            "ramping-arrival-rate needs stages (e.g. --stages 30s:1000,1m:1000)",
                        )
                    })?;
                    let mut from =
                        per_second(self.start_rate.unwrap_or(defaults::START_RATE), "startRate")?;
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
                let vus = self.vus.unwrap_or(defaults::VUS);
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
        Ok(executor)
    }

    /// The thresholds from the flags, then the scenario's (a flag repeating
    /// one of the file's is that one).
    fn thresholds(&self) -> Result<Vec<Threshold>, InvalidConfig> {
        let mut thresholds = Vec::new();
        for flag in &self.threshold_flags {
            thresholds.push(Threshold::parse_flag(flag).map_err(|e| invalid(e.to_string()))?);
        }
        for (metric, specs) in self.thresholds.clone().unwrap_or_default() {
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
        Ok(thresholds)
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

#[cfg(test)]
mod tests {
    use clap::Parser;

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
