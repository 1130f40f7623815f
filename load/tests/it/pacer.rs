//! The open model keeps its schedule: against the built-in do-nothing
//! server, a constant arrival rate arrives at that rate, spread over the
//! test's length, not in bursts at either end.

use std::sync::atomic::Ordering;

use clap::Parser;
use eventpipe_load::config::Options;
use eventpipe_load::null_server::NullServer;
use eventpipe_load::{Exit, metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constant_arrival_rate_arrives_within_two_percent() {
    let _machine = crate::alone().await;
    let server = NullServer::start().await.unwrap();
    let (rate, seconds) = (3000.0, 4.0);
    let config = Options::try_parse_from([
        "eventpipe-load",
        "--url",
        &server.url(),
        "--rate",
        &rate.to_string(),
        "--duration",
        &format!("{seconds}s"),
        "--no-progress",
    ])
    .unwrap()
    .resolve()
    .unwrap();
    let finished = eventpipe_load::run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(finished.exit, Exit::Passed);

    let received = server.seen.requests.load(Ordering::Relaxed) as f64;
    let (first, last) = server.seen.span.lock().unwrap().unwrap();
    let span = (last - first).as_secs_f64();
    // n arrivals on a fixed schedule span (n - 1) intervals.
    let achieved = (received - 1.0) / span;
    let expected = rate * seconds;
    assert!(
        (received - expected).abs() <= expected * 0.02,
        "{received} requests arrived, {expected} were scheduled"
    );
    assert!(
        (achieved - rate).abs() <= rate * 0.02,
        "arrived at {achieved:.0}/s over {span:.3}s; the target was {rate}/s"
    );
    let dropped = finished
        .snapshot
        .aggregate(metrics::DROPPED_ITERATIONS, "count")
        .unwrap();
    assert!(dropped <= expected * 0.02, "{dropped} starts dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_arrives_as_its_stages_say() {
    let _machine = crate::alone().await;
    let server = NullServer::start().await.unwrap();
    // 0 → 2000/s over 2 s, then 2000/s for 1 s: 2000 + 2000 arrivals.
    let config = Options::try_parse_from([
        "eventpipe-load",
        "--url",
        &server.url(),
        "--executor",
        "ramping-arrival-rate",
        "--stages",
        "2s:2000,1s:2000",
        "--no-progress",
    ])
    .unwrap()
    .resolve()
    .unwrap();
    let finished = eventpipe_load::run(config, std::future::pending())
        .await
        .unwrap();
    let received = server.seen.requests.load(Ordering::Relaxed) as f64;
    assert!((received - 4000.0).abs() <= 80.0, "{received} arrived");
    let (first, last) = server.seen.span.lock().unwrap().unwrap();
    let span = (last - first).as_secs_f64();
    assert!((span - 3.0).abs() < 0.06, "arrivals spanned {span:.3}s");
    assert_eq!(finished.exit, Exit::Passed);
}
