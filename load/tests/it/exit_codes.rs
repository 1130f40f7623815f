//! The binary's exit codes are k6's: 0 pass, 99 a threshold failed, 104
//! invalid configuration, 105 interrupted. Runs use `--calibrate`, whose
//! built-in do-nothing server makes them independent of the pipeline.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eventpipe-load"))
        .args(args)
        .env_remove("LOAD_URL")
        .env_remove("LOAD_AUDIT_DATABASE_URL")
        .output()
        .unwrap()
}

/// Runs the binary with `args`, sends SIGINT after `wait`, returns how it ended.
fn interrupted_after(args: &[&str], wait: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_eventpipe-load"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(wait);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn bad_configuration_exits_104_and_names_the_problem() {
    let _machine = crate::shared_blocking();
    for (args, says) in [
        (
            &["--threshold", "http_req_duration: p(95)<<200"][..],
            "http_req_duration",
        ),
        (
            &["--threshold", "http_req_duration p(95)<200"][..],
            "METRIC: EXPRESSION",
        ),
        (
            &["--threshold", "no_such_metric: count<1"][..],
            "no such metric",
        ),
        (&["--no-such-flag"][..], "--no-such-flag"),
        (&["--duration", "soon"][..], "soon"),
        (&["--url", "ftp://example.org"][..], "ftp"),
        (
            &["--scenario", "/nonexistent/scenario.toml"][..],
            "scenario.toml",
        ),
    ] {
        let output = load(args);
        assert_eq!(
            output.status.code(),
            Some(104),
            "{args:?}: {}",
            text(&output)
        );
        assert!(text(&output).contains(says), "{args:?}: {}", text(&output));
    }
}

#[test]
fn a_passing_run_exits_0_and_exports_a_k6_summary() {
    // Every one of its 1000 arrivals must be sent in its 2 s (no dropped
    // iterations): beside the tests that drive the whole pipeline, the two
    // cores were too busy for that (910 and 976 of 1000, twice).
    let _machine = crate::alone_blocking();
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let series = dir.path().join("series.ndjson");
    let output = load(&[
        "--calibrate",
        "--executor",
        "constant-arrival-rate",
        "--rate",
        "500",
        "--duration",
        "2s",
        "--batch-size",
        "1:1,5:1",
        "--threshold",
        "http_req_failed: rate<0.01",
        "--threshold",
        "http_reqs: count>=990",
        "--summary-export",
        summary.to_str().unwrap(),
        "--timeseries",
        series.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("✓ 'rate<0.01'"), "{stdout}");
    assert!(stdout.contains("http_req_duration..."), "{stdout}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let duration = &json["metrics"]["http_req_duration"];
    assert_eq!(duration["type"], "trend");
    assert_eq!(duration["contains"], "time");
    for stat in ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"] {
        assert!(duration["values"][stat].is_number(), "{stat} missing");
    }
    assert_eq!(json["metrics"]["http_reqs"]["type"], "counter");
    assert_eq!(json["metrics"]["http_reqs"]["values"]["count"], 1000.0);
    assert_eq!(
        json["metrics"]["http_req_failed"]["thresholds"]["rate<0.01"]["ok"],
        true
    );
    assert_eq!(json["metrics"]["http_req_failed"]["values"]["passes"], 0.0);
    assert!(json["state"]["testRunDurationMs"].as_f64().unwrap() >= 2000.0);

    let lines = std::fs::read_to_string(&series).unwrap();
    let points: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests: f64 = points
        .iter()
        .filter(|p| p["metric"] == "http_reqs")
        .map(|p| p["values"]["count"].as_f64().unwrap())
        .sum();
    assert_eq!(
        requests, 1000.0,
        "the per-second points add up to the total"
    );
    assert!(
        points
            .iter()
            .any(|p| p["metric"] == "http_req_duration" && p["values"]["p(99)"].is_number())
    );
}

#[test]
fn an_impossible_threshold_exits_99() {
    let _machine = crate::shared_blocking();
    let output = load(&[
        "--calibrate",
        "--duration",
        "1s",
        "--vus",
        "4",
        "--threshold",
        "http_req_duration: p(99)<0",
    ]);
    assert_eq!(output.status.code(), Some(99), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("✗ 'p(99)<0'"));
}

#[test]
fn abort_on_fail_stops_the_test_early_and_exits_99() {
    let _machine = crate::shared_blocking();
    let started = Instant::now();
    let output = load(&[
        "--calibrate",
        "--duration",
        "60s",
        "--vus",
        "4",
        "--threshold",
        "http_reqs: count<10, abortOnFail",
    ]);
    assert_eq!(output.status.code(), Some(99), "{}", text(&output));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it ran {:?}",
        started.elapsed()
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("abortOnFail"));
}

#[test]
fn an_interrupt_exits_105_with_a_summary() {
    let _machine = crate::shared_blocking();
    let output = interrupted_after(
        &["--calibrate", "--duration", "60s", "--vus", "4"],
        Duration::from_millis(1500),
    );
    assert_eq!(output.status.code(), Some(105), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("cut short: interrupted"));
}

/// `--forever` runs round after round (each its own test) until
/// interrupted, then exits 105 like any interrupted run.
#[test]
fn forever_runs_round_after_round_until_interrupted() {
    let _machine = crate::shared_blocking();
    let output = interrupted_after(
        &[
            "--calibrate",
            "--forever",
            "--duration",
            "1s",
            "--vus",
            "1",
            "--no-progress",
            "--no-summary",
        ],
        Duration::from_millis(3500),
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(105), "{said}");
    assert!(said.contains("round 1 ended: Passed; next round"), "{said}");
    assert!(said.contains("round 2 ended: Passed; next round"), "{said}");
}

/// The compose stack's emitter: its scenario resolves with the flags
/// docker-compose.yml gives it (the compose tests check the rest).
#[test]
fn the_emitter_scenario_resolves_with_the_compose_flags() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/emitter.toml");
    let config = eventpipe_load::config::Options::from_args([
        "--scenario",
        scenario,
        "--forever",
        "--no-progress",
        "--url",
        "http://api:8080",
        "--events-rate",
        "1000",
        "--control",
        "0.0.0.0:9464",
    ])
    .unwrap()
    .resolve()
    .unwrap();
    assert!(config.forever);
    assert!(config.audit.is_none(), "nothing may pile up between rounds");
    assert!(config.describe().contains("constant-arrival-rate"));
    assert_eq!(config.control.map(|a| a.port()), Some(9464));
    // 1,000 events per second, as requests of the mix's mean batch.
    let eventpipe_load::config::Executor::Arrivals { schedule, .. } = &config.executor else {
        panic!("not an arrival-rate executor");
    };
    let events = schedule.rate_at(std::time::Duration::ZERO) * config.shape.batch.mean();
    assert!((events - 1000.0).abs() < 1e-6, "{events}");
}
