//! Ingestion benchmark: what the API sustains, how fast it answers, and
//! what it costs, against an embedded Kafka, in one run:
//!
//! 1. the raw rdkafka produce rate for the exact messages the API would
//!    produce, with the API's producer settings (the ceiling to compare to);
//! 2. the API in a process of its own (as deployed; its RSS is read from
//!    /proc) driven by `eventpipe-load`'s closed model: single events at 1,
//!    32 and 256 connections, batches of 100 at 32, each phase printing
//!    requests/s, events/s, p50, p99 and p99.9 and the API's RSS after it
//!    (closed model: each connection sends when its answer came, so the
//!    latency is what a client waits; nothing is omitted);
//! 3. overload: single events open-model (constant arrival rate, latency
//!    from each request's intended start, so coordinated omission is
//!    corrected) at twice what the 256-connection phase sustained: how much
//!    is accepted, how much refused with 503, the accepted requests' p99
//!    (the API's own histogram) and the API's peak RSS;
//! 4. the cost of tracing: batches and singles with traces off, sampled at
//!    1 % and at 100 %, each mode an API process of its own exporting over
//!    OTLP/HTTP to a receiver here that counts the spans, the modes taking
//!    turns `BENCH_TRACING_ROUNDS` times.
//!
//! Run: `cargo bench -p eventpipe-api --bench ingest`
//! (`BENCH_SECS`, default 10 per phase; `BENCH_RAW_MESSAGES`, default
//! 1000000; `BENCH_TRACING_ROUNDS`, default 2, 0 skips the tracing phases;
//! `BENCH_API_ENV`, extra `KEY=VALUE;...` for the API processes, e.g.
//! `KAFKA_LINGER_MS=5` to compare producer settings.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use eventpipe_contract::{Rules, validate_event};
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_load::config::Options;
use eventpipe_load::{Exit, metrics};
use eventpipe_sample::mix::Shape;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

mod raw;
mod traces;

use raw::raw_produce;
use traces::tracing_cost;

const TOPIC: &str = "events";

/// Set in the API's process: serve, print the address, run until killed.
const CHILD: &str = "BENCH_API_CHILD";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one closed-model phase measured.
struct Phase {
    requests: f64,
    events: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

/// Runs `eventpipe-load` against `url` with `args`, quietly, to the end.
async fn load(url: &str, args: &[String]) -> eventpipe_load::Finished {
    let mut all = vec![
        format!("--url={url}"),
        "--no-progress".to_owned(),
        "--no-summary".to_owned(),
    ];
    all.extend_from_slice(args);
    let config = Options::from_args(all).unwrap().resolve().unwrap();
    eventpipe_load::run(config, std::future::pending())
        .await
        .unwrap()
}

/// Drives the API at `url` with `eventpipe-load`'s closed model: `vus`
/// keep-alive connections sending `batch`-event requests for `secs`.
async fn drive(url: &str, batch: usize, vus: usize, secs: u64) -> Phase {
    let finished = load(
        url,
        &[
            "--executor=constant-vus".to_owned(),
            format!("--vus={vus}"),
            format!("--duration={secs}s"),
            format!("--batch-size={batch}"),
            "--threshold=http_req_failed: rate==0".to_owned(),
        ],
    )
    .await;
    assert_eq!(
        finished.exit,
        Exit::Passed,
        "some requests were not accepted"
    );
    let s = &finished.snapshot;
    let duration = |p: &str| s.aggregate(metrics::HTTP_REQ_DURATION, p).unwrap();
    Phase {
        requests: s.aggregate(metrics::HTTP_REQS, "rate").unwrap(),
        events: s.aggregate(metrics::EVENTS_ACCEPTED, "rate").unwrap(),
        p50: duration("p(50)"),
        p99: duration("p(99)"),
        p999: duration("p(99.9)"),
    }
}

/// The API in a process of its own.
struct ApiProcess {
    child: Child,
    url: String,
}

impl ApiProcess {
    /// Starts this benchmark's binary as the API on `bootstrap`, with
    /// `env` on top of the defaults and `BENCH_API_ENV`.
    fn start(bootstrap: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(CHILD, "1")
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("KAFKA_EVENTS_TOPIC", TOPIC)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        for var in eventpipe_service::telemetry::VARS {
            command.env_remove(var.name);
        }
        let extra = std::env::var("BENCH_API_ENV").unwrap_or_default();
        for pair in extra.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').expect("BENCH_API_ENV: KEY=VALUE;...");
            command.env(k.trim(), v.trim());
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("the API process ended").unwrap();
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                break format!("http://{addr}");
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ApiProcess { child, url }
    }

    /// (resident, peak resident) memory in MiB, from /proc.
    fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }

    /// The API's own `/metrics` text.
    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// SIGTERM, then wait: the API flushes and exits.
    fn stop(self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        // Drop waits.
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        // Stopped, or the benchmark panicked: never leave it running.
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(200));
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// The API process: serves until killed, exporting traces when the
/// `OTEL_*` variables ask.
async fn child() {
    let telemetry = eventpipe_service::telemetry::init("eventpipe-api").unwrap();
    let config = eventpipe_api::config::ApiConfig::from_env().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("LISTENING {}", listener.local_addr().unwrap());
    eventpipe_api::serve(config, listener, eventpipe_service::shutdown_signal())
        .await
        .unwrap();
    telemetry.shutdown();
}

/// The 99th percentile of accepted (202) requests from the API's own
/// latency histogram: the upper bound of the bucket it falls in, in ms.
fn accepted_p99_ms(metrics: &str) -> f64 {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        if !line.starts_with("eventpipe_api_http_request_duration_seconds_bucket")
            || !line.contains("route=\"/events\"")
            || !line.contains("status=\"202\"")
        {
            continue;
        }
        let le = line
            .split("le=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        buckets.push((le, count));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= 0.99 * total)
        .map_or(f64::NAN, |(le, _)| le * 1000.0)
}

/// A counter of the API's `/metrics` text: the sum of the series of
/// `name` whose labels include every one of `labels`.
fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Open-model overload: single events at `rate` requests/s for `secs`
/// against a fresh `api`. Returns (accepted/s, refused with 503/s, p99 of
/// all answers in ms, CO-corrected), from the API's own request counts.
async fn overload(api: &ApiProcess, rate: f64, secs: u64) -> (f64, f64, f64) {
    let finished = load(
        &api.url,
        &[
            "--executor=constant-arrival-rate".to_owned(),
            format!("--rate={}", rate.round()),
            format!("--duration={secs}s"),
            "--pre-allocated-vus=512".to_owned(),
            "--max-vus=4096".to_owned(),
            "--timeout=10s".to_owned(),
            "--batch-size=1".to_owned(),
            "--success-status=202,503".to_owned(),
        ],
    )
    .await;
    let p99 = finished
        .snapshot
        .aggregate(metrics::HTTP_REQ_DURATION, "p(99)")
        .unwrap();
    let text = api.metrics().await;
    let answered = |status: &str| {
        counter(
            &text,
            "eventpipe_api_http_requests_total",
            &["route=\"/events\"", &format!("status=\"{status}\"")],
        ) / secs as f64
    };
    (answered("202"), answered("503"), p99)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os(CHILD).is_some() {
        runtime.block_on(child());
    } else {
        runtime.block_on(run());
    }
}

async fn run() {
    let secs: u64 = env_or("BENCH_SECS", 10);
    let raw_messages: usize = env_or("BENCH_RAW_MESSAGES", 1_000_000);
    let tracing_rounds: usize = env_or("BENCH_TRACING_ROUNDS", 2);
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic(TOPIC, 6).unwrap();
    let bootstrap = kafka.bootstrap_servers();

    // The exact values the API would produce for the load tool's events.
    let now = chrono::Utc::now();
    let bodies = eventpipe_sample::bodies(&Shape::default(), 1000);
    let values: Vec<(String, Vec<u8>)> = bodies
        .iter()
        .map(|body| {
            let raw: &serde_json::value::RawValue = serde_json::from_slice(body).unwrap();
            let record = validate_event(raw, now, &Rules::default()).unwrap();
            (record.user_id.to_string(), record.to_json())
        })
        .collect();
    let raw_elapsed = {
        let bootstrap = bootstrap.clone();
        let values = values.clone();
        tokio::task::spawn_blocking(move || raw_produce(&bootstrap, &values, raw_messages))
            .await
            .unwrap()
    };
    let raw_rate = raw_messages as f64 / raw_elapsed.as_secs_f64();

    println!();
    println!(
        "eventpipe ingest benchmark ({} cores; {secs} s per phase; the API in a process of its own{})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("BENCH_API_ENV")
            .map(|e| format!(", with {e}"))
            .unwrap_or_default()
    );
    println!(
        "  raw rdkafka produce (acks=all, idempotent, lz4)  {raw_rate:>10.0} msg/s   ({raw_messages} messages)"
    );
    println!(
        "  {:<30}{:>10}{:>11}{:>9}{:>9}{:>10}{:>9}",
        "phase (closed model)", "req/s", "events/s", "p50 ms", "p99 ms", "p99.9 ms", "RSS MiB"
    );
    let api = ApiProcess::start(&bootstrap, &[]);
    let mut batch_rate = 0.0;
    let mut sustained = 0.0;
    for (name, batch, vus) in [
        ("single events, 1 connection", 1, 1),
        ("single events, 32 connections", 1, 32),
        ("single events, 256 connections", 1, 256),
        ("batches of 100, 32 connections", 100, 32),
    ] {
        let phase = drive(&api.url, batch, vus, secs).await;
        let (rss, _) = api.rss_mib();
        println!(
            "  {name:<30}{:>10.0}{:>11.0}{:>9.2}{:>9.2}{:>10.2}{rss:>9.0}",
            phase.requests, phase.events, phase.p50, phase.p99, phase.p999
        );
        if vus == 256 {
            sustained = phase.requests;
        }
        if batch == 100 {
            batch_rate = phase.events;
        }
    }
    println!(
        "  API batches / raw produce                        {:>10.1} %",
        100.0 * batch_rate / raw_rate
    );
    api.stop();

    // Overload, on a fresh API so its peak memory is this phase's.
    let api = ApiProcess::start(&bootstrap, &[]);
    let rate = 2.0 * sustained;
    let (accepted, refused, p99) = overload(&api, rate, secs).await;
    let accepted_p99 = accepted_p99_ms(&api.metrics().await);
    let (_, peak) = api.rss_mib();
    api.stop();
    println!("  overload: single events open-model at {rate:.0}/s (twice the 256-connection rate)");
    println!(
        "    accepted {accepted:.0}/s, refused with 503 {refused:.0}/s; p99 of all answers {p99:.1} ms \
         (from each request's intended start), of accepted ones <= {accepted_p99} ms (API histogram bucket); \
         API peak RSS {peak:.0} MiB"
    );
    println!();
    if tracing_rounds > 0 {
        tracing_cost(&bootstrap, secs, tracing_rounds).await;
    }
}
