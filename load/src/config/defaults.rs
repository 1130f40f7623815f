//! Every default of the run's settings, written once: [`check`] fills
//! what flags, variables and the scenario left unset from here, and
//! `--help` shows the same values ([`shown`]).
//!
//! [`check`]: super::check

use std::time::Duration;

use eventpipe_sample::mix::{BatchSizes, Mix};

use crate::duration;

/// `--url`.
pub const URL: &str = "http://127.0.0.1:8080";
/// `--executor`, unless calibrating.
pub const EXECUTOR: &str = "constant-arrival-rate";
/// `--executor` with `--calibrate`.
pub const CALIBRATION_EXECUTOR: &str = "constant-vus";
/// `--rate`, iterations per time unit.
pub const RATE: f64 = 1000.0;
/// `--time-unit`.
pub const TIME_UNIT: Duration = Duration::from_secs(1);
/// `--duration`.
pub const DURATION: Duration = Duration::from_secs(30);
/// `--start-rate`.
pub const START_RATE: f64 = 0.0;
/// `--pre-allocated-vus`.
pub const PRE_ALLOCATED_VUS: u32 = 64;
/// `--max-vus` (or `--pre-allocated-vus` when that is more).
pub const MAX_VUS: u32 = 512;
/// `--vus`.
pub const VUS: u32 = 32;
/// `--graceful-stop`.
pub const GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// `--timeout`.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// `--success-status`.
pub const SUCCESS_STATUS: u16 = 202;
/// `--users`.
pub const USERS: u64 = 1000;
/// `--invalid-fraction` and `--duplicate-fraction`.
pub const FRACTION: f64 = 0.0;
/// `--seed`.
pub const SEED: u64 = 1;
/// `--audit-drain`.
pub const AUDIT_DRAIN: Duration = Duration::from_secs(60);
/// `--visibility-sample-every`.
pub const VISIBILITY_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// `--batch-size`: single events.
pub fn batch_size() -> BatchSizes {
    BatchSizes(vec![(1, 1)])
}

/// `--threads`: the machine's cores.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Each flag's default as `--help` shows it, by the flag's id.
pub fn shown() -> Vec<(&'static str, String)> {
    let time = duration::format;
    vec![
        ("url", URL.to_owned()),
        (
            "executor",
            format!("{EXECUTOR}; {CALIBRATION_EXECUTOR} with --calibrate"),
        ),
        ("rate", RATE.to_string()),
        ("time_unit", time(TIME_UNIT)),
        ("duration", time(DURATION)),
        ("start_rate", START_RATE.to_string()),
        ("pre_allocated_vus", PRE_ALLOCATED_VUS.to_string()),
        (
            "max_vus",
            format!("{MAX_VUS}, or --pre-allocated-vus if more"),
        ),
        ("vus", VUS.to_string()),
        ("graceful_stop", time(GRACEFUL_STOP)),
        ("timeout", time(TIMEOUT)),
        ("success_statuses", SUCCESS_STATUS.to_string()),
        ("mix", Mix::default().to_string()),
        ("users", USERS.to_string()),
        ("batch_size", batch_size().to_string()),
        ("invalid_fraction", FRACTION.to_string()),
        ("duplicate_fraction", FRACTION.to_string()),
        ("seed", SEED.to_string()),
        ("audit_drain", time(AUDIT_DRAIN)),
        ("visibility_sample_every", time(VISIBILITY_SAMPLE_EVERY)),
        ("threads", "the machine's cores".to_owned()),
    ]
}
