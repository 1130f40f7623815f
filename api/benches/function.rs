//! The API as a Lambda function, under cargo-lambda's emulator, against an
//! embedded Kafka: what a cold start costs and what an invocation takes
//! when warm, the figures a cost per million events is computed from
//! (docs/DEPLOY.md).
//!
//! 1. cold starts: `BENCH_COLD_STARTS` (default 10) times a new function
//!    process (a new execution environment), timed from its start to the
//!    202 of its first request, which includes making the producer and
//!    waiting for Kafka's metadata;
//! 2. warm: `BENCH_INVOCATIONS` (default 2000) requests one after another
//!    (an environment serves one invocation at a time), single events and
//!    batches of 100, each timed as the client sees it through the
//!    emulator (the function's own share is less).
//!
//! Run: `cargo bench -p eventpipe-api --bench function` (needs
//! cargo-lambda: `scripts/setup` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_service::function::{Emulator, Function};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A function process, and when it said it takes invocations (its init
/// is over: what Lambda reports as the Init Duration).
fn function(emulator: &Emulator, bootstrap: &str) -> (Function, mpsc::Receiver<Instant>) {
    let mut function = emulator
        .function(
            Path::new(env!("CARGO_BIN_EXE_eventpipe-api")),
            [
                ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
                ("RUST_LOG", "eventpipe_api::function=info,error"),
            ],
            Stdio::piped(),
        )
        .unwrap();
    let (ready, init) = mpsc::channel();
    let lines = BufReader::new(function.take_stdout().unwrap()).lines();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("serving Lambda invocations") {
                let _ = ready.send(Instant::now());
            }
        }
    });
    (function, init)
}

/// Percentile `q` of sorted `samples`, in milliseconds.
fn percentile(samples: &[Duration], q: f64) -> f64 {
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i].as_secs_f64() * 1000.0
}

fn body(batch: usize, n: usize) -> String {
    let events: Vec<serde_json::Value> = (0..batch)
        .map(|i| serde_json::json!({"user_id": format!("u{}", (n + i) % 1000), "type": "click", "payload": {"n": n}}))
        .collect();
    if batch == 1 {
        events[0].to_string()
    } else {
        serde_json::Value::from(events).to_string()
    }
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> reqwest::StatusCode {
    http.post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_or(reqwest::StatusCode::BAD_GATEWAY, |r| r.status())
}

#[tokio::main]
async fn main() {
    let cold_starts: usize = env_or("BENCH_COLD_STARTS", 10);
    let invocations: usize = env_or("BENCH_INVOCATIONS", 2000);
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic("events", 6).unwrap();
    let bootstrap = kafka.bootstrap_servers();
    let emulator = Emulator::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let url = emulator.function_url("/events");
    let http = reqwest::Client::new();

    println!();
    println!(
        "eventpipe API as a Lambda function, cargo-lambda's emulator ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut cold = Vec::with_capacity(cold_starts);
    let mut inits = Vec::with_capacity(cold_starts);
    for n in 0..cold_starts {
        let started = Instant::now();
        let (child, init) = function(&emulator, &bootstrap);
        inits.push(
            init.recv_timeout(Duration::from_secs(60))
                .expect("the function never took invocations")
                - started,
        );
        loop {
            if post(&http, &url, body(1, n)).await == 202 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no 202");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cold.push(started.elapsed());
        drop(child);
    }
    cold.sort();
    inits.sort();
    println!(
        "  cold start, {cold_starts} environments: init (producer made, Kafka answered)   p50 {:>7.1} ms   max {:>7.1} ms",
        percentile(&inits, 0.5),
        percentile(&inits, 1.0)
    );
    println!(
        "                   start to the first request's 202                   p50 {:>7.1} ms   max {:>7.1} ms",
        percentile(&cold, 0.5),
        percentile(&cold, 1.0)
    );

    let (child, _) = function(&emulator, &bootstrap);
    while post(&http, &url, body(1, 0)).await != 202 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for batch in [1, 100] {
        let mut took = Vec::with_capacity(invocations);
        let started = Instant::now();
        for n in 0..invocations {
            let begun = Instant::now();
            assert_eq!(post(&http, &url, body(batch, n)).await, 202);
            took.push(begun.elapsed());
        }
        let rate = invocations as f64 / started.elapsed().as_secs_f64();
        took.sort();
        println!(
            "  warm, {:<22} {invocations} invocations   {rate:>7.0} /s   p50 {:>6.2} ms   p99 {:>6.2} ms   mean {:>6.2} ms",
            if batch == 1 {
                "single events"
            } else {
                "batches of 100"
            },
            percentile(&took, 0.5),
            percentile(&took, 0.99),
            took.iter().sum::<Duration>().as_secs_f64() * 1000.0 / invocations as f64,
        );
    }
    drop(child);
    println!();
}
