//! The worker as a Kafka-triggered Lambda function, under cargo-lambda's
//! emulator, against an embedded Kafka and a scratch PostgreSQL database:
//! what a cold start costs and how long a batch invocation takes when
//! warm, with the anomaly rules on (the figures a cost per million events
//! is computed from; docs/DEPLOY.md).
//!
//! The batches are made of the events the API would have produced (the
//! load generator's mix, `BENCH_USERS` users, default 5000), as an event
//! source mapping hands them over: `BENCH_BATCH` records each (default
//! 1000; the mapping's own default is 100, its maximum 10000),
//! `BENCH_BATCHES` of them (default 100), invoked one after another (the
//! mapping invokes one batch per partition at a time).
//!
//! 1. cold starts: `BENCH_COLD_STARTS` (default 5) new function processes,
//!    each timed from its start to the answer of its first invocation (a
//!    batch of its own; connecting to PostgreSQL and Kafka included);
//! 2. warm: the batches through one environment: events/s and the
//!    invocation's duration as the client sees it through the emulator.
//!
//! Run: `cargo bench -p eventpipe-worker --bench function`
//! (`BENCH_FUNCTION_ENV`, extra `KEY=VALUE;...` for the functions; needs
//! cargo-lambda, which `scripts/setup` installs, and PostgreSQL at
//! 127.0.0.1:5432).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use eventpipe_contract::{Rules, validate_event};
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_sample::mix::Shape;
use eventpipe_service::function::{Emulator, Function};
use eventpipe_store::ScratchDatabase;
use eventpipe_worker::function::kafka_event;
use eventpipe_worker::source::{Received, Record};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn function(emulator: &Emulator, bootstrap: &str, database: &str) -> Function {
    let mut vars = vec![
        ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), bootstrap.to_owned()),
        ("DATABASE_URL".to_owned(), database.to_owned()),
        ("RUST_LOG".to_owned(), "error".to_owned()),
    ];
    vars.extend(extra_env());
    emulator
        .function(
            Path::new(env!("CARGO_BIN_EXE_eventpipe-worker")),
            vars,
            Stdio::null(),
        )
        .unwrap()
}

/// `BENCH_FUNCTION_ENV`: `KEY=VALUE;...` for the function processes
/// (e.g. `WORKER_ANOMALIES=false` to see what the rules cost).
fn extra_env() -> Vec<(String, String)> {
    std::env::var("BENCH_FUNCTION_ENV")
        .unwrap_or_default()
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .expect("BENCH_FUNCTION_ENV: KEY=VALUE;...");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// Percentile `q` of sorted `samples`, in milliseconds.
fn percentile(samples: &[Duration], q: f64) -> f64 {
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i].as_secs_f64() * 1000.0
}

/// The batch events: `batches` of `size` records, spread over 6
/// partitions with increasing offsets, the values the API would produce.
fn batches(users: u64, size: usize, batches: usize) -> Vec<serde_json::Value> {
    let now = chrono::Utc::now();
    let shape = Shape {
        users,
        ..Shape::default()
    };
    let bodies = eventpipe_sample::bodies(&shape, size * batches);
    let mut offsets = [0_i64; 6];
    let messages: Vec<Received> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let raw: &serde_json::value::RawValue = serde_json::from_slice(body).unwrap();
            let record = validate_event(raw, now, &Rules::default()).unwrap();
            let partition = i % 6;
            offsets[partition] += 1;
            Received::from(Record {
                topic: "events".to_owned(),
                partition: partition as i32,
                offset: offsets[partition],
                timestamp_ms: now.timestamp_millis(),
                key: Some(record.user_id.as_bytes().to_vec()),
                value: Some(record.to_json()),
                headers: vec![("eventpipe-schema-version".to_owned(), b"1".to_vec())],
            })
        })
        .collect();
    messages.chunks(size).map(kafka_event).collect()
}

async fn invoke(http: &reqwest::Client, emulator: &Emulator, event: &serde_json::Value) -> bool {
    match http.post(emulator.invoke_url()).json(event).send().await {
        Ok(response) => {
            response.status() == 200 && response.headers().get("x-amz-function-error").is_none()
        }
        Err(_) => false,
    }
}

#[tokio::main]
async fn main() {
    let users: u64 = env_or("BENCH_USERS", 5000);
    let size: usize = env_or("BENCH_BATCH", 1000);
    let count: usize = env_or("BENCH_BATCHES", 100);
    let cold_starts: usize = env_or("BENCH_COLD_STARTS", 5);
    let database = ScratchDatabase::create(SERVER, "eventpipe_bench")
        .await
        .unwrap();
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic("events", 6).unwrap();
    kafka.create_topic("events.dlq", 1).unwrap();
    kafka.create_topic("anomalies", 3).unwrap();
    let bootstrap = kafka.bootstrap_servers();
    let emulator = Emulator::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let http = reqwest::Client::new();
    let events = batches(users, size, count + cold_starts);
    let (cold_events, warm_events) = events.split_at(cold_starts);

    println!();
    println!(
        "eventpipe worker as a Kafka-triggered Lambda function, cargo-lambda's emulator ({} cores; batches of {size}{})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("BENCH_FUNCTION_ENV")
            .map(|e| format!(", with {e}"))
            .unwrap_or_default()
    );
    let mut cold = Vec::with_capacity(cold_starts);
    for event in cold_events {
        let started = Instant::now();
        let child = function(&emulator, &bootstrap, &database.url);
        while !invoke(&http, &emulator, event).await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "never answered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cold.push(started.elapsed());
        drop(child);
    }
    cold.sort();
    println!(
        "  cold start to first batch stored ({cold_starts} environments)   p50 {:>7.1} ms   max {:>7.1} ms",
        percentile(&cold, 0.5),
        percentile(&cold, 1.0)
    );

    let child = function(&emulator, &bootstrap, &database.url);
    let mut took = Vec::with_capacity(count);
    let started = Instant::now();
    for event in warm_events {
        let begun = Instant::now();
        while !invoke(&http, &emulator, event).await {
            assert!(begun.elapsed() < Duration::from_secs(60), "never answered");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(begun.elapsed());
    }
    let elapsed = started.elapsed().as_secs_f64();
    took.sort();
    println!(
        "  warm, {count} batches of {size}   {:>8.0} events/s   invocation p50 {:>7.1} ms   p99 {:>7.1} ms   mean {:>7.1} ms",
        (count * size) as f64 / elapsed,
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        elapsed * 1000.0 / count as f64
    );
    drop(child);
    println!();
}
