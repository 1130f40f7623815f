//! Ingestion benchmark: events/s the API accepts (202, Kafka acknowledged)
//! for batches of 100 and for single events, against an embedded Kafka, and
//! in the same run the raw rdkafka produce rate for the same messages with
//! the same producer settings, so the API's overhead is a ratio measured on
//! one machine at one time. The load is `eventpipe-load`'s (its closed-model
//! executor and its event mix), so these figures and the load tool's agree.
//!
//! Then the cost of tracing: the same API phases with traces off (no
//! endpoint), sampled at 1 % and at 100 %, each in its own process (the
//! tracing set-up is per process, as in production) started by this one,
//! exporting over real OTLP/HTTP to a receiver here that counts the spans.
//! The modes take turns, `BENCH_TRACING_ROUNDS` times, so drift on a noisy
//! machine spreads over all of them.
//!
//! Run: `cargo bench -p eventpipe-api --bench ingest`
//! (`BENCH_SECS`, default 10 per phase; `BENCH_CONNECTIONS`, default 32;
//! `BENCH_SINGLE_CONNECTIONS`, default 256;
//! `BENCH_RAW_MESSAGES`, default 1000000; `BENCH_TRACING_ROUNDS`, default 2,
//! 0 to skip the tracing phases.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use eventpipe_api::config::ApiConfig;
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

const TOPIC: &str = "events";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Drives the API at `addr` with `eventpipe-load`'s closed model: `vus`
/// keep-alive connections sending `batch`-event requests for `secs`.
/// Returns (requests/s, events accepted/s).
async fn drive(addr: std::net::SocketAddr, batch: usize, vus: usize, secs: u64) -> (f64, f64) {
    let config = Options::from_args([
        format!("--url=http://{addr}"),
        "--executor=constant-vus".to_owned(),
        format!("--vus={vus}"),
        format!("--duration={secs}s"),
        format!("--batch-size={batch}"),
        "--threshold=http_req_failed: rate==0".to_owned(),
        "--no-progress".to_owned(),
        "--no-summary".to_owned(),
    ])
    .unwrap()
    .resolve()
    .unwrap();
    let finished = eventpipe_load::run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        finished.exit,
        Exit::Passed,
        "some requests were not accepted"
    );
    let s = &finished.snapshot;
    (
        s.aggregate(metrics::HTTP_REQS, "rate").unwrap(),
        s.aggregate(metrics::EVENTS_ACCEPTED, "rate").unwrap(),
    )
}

/// Counts failed deliveries; the cheapest possible delivery handling.
struct CountFailures(Arc<AtomicU64>);

impl ClientContext for CountFailures {}

impl ProducerContext for CountFailures {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces `n` messages shaped exactly like the API's with the API's
/// producer settings as fast as rdkafka allows (no per-message future:
/// enqueue everything, then flush), and checks every one was acknowledged.
fn raw_produce(bootstrap: &str, values: &[(String, Vec<u8>)], n: usize) -> Duration {
    let failures = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<CountFailures> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(CountFailures(failures.clone()))
        .unwrap();
    let started = Instant::now();
    for i in 0..n {
        let (key, value) = &values[i % values.len()];
        loop {
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header {
                    key: "eventpipe-schema-version",
                    value: Some("1"),
                })
                .insert(Header {
                    key: "eventpipe-request-id",
                    value: Some("01a208af-a42a-7758-a5af-e48e2bbf2254"),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                });
            let record = BaseRecord::to(TOPIC)
                .key(key.as_bytes())
                .payload(value)
                .headers(headers);
            match producer.send(record) {
                Ok(()) => break,
                // Queue full: let deliveries drain it.
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "some messages were not acknowledged"
    );
    elapsed
}

/// Set in a child process: run only the API phases, with the tracing the
/// `OTEL_*` variables ask for, and print one `RESULT` line.
const CHILD: &str = "BENCH_TRACING_CHILD";

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

struct Phases {
    secs: u64,
    connections: usize,
    single_connections: usize,
}

impl Phases {
    fn from_env() -> Self {
        Phases {
            secs: env_or("BENCH_SECS", 10),
            connections: env_or("BENCH_CONNECTIONS", 32),
            // One event per request is latency-bound (each waits for Kafka's
            // acknowledgement, linger included), so it takes more clients in flight.
            single_connections: env_or("BENCH_SINGLE_CONNECTIONS", 256),
        }
    }

    /// Serves the API on `bootstrap` and drives it with batches of 100,
    /// then single events: (batch requests/s, batch events/s, singles/s).
    async fn drive_api(&self, bootstrap: &str) -> (f64, f64, f64) {
        let env: HashMap<&str, String> = HashMap::from([
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
            ("KAFKA_EVENTS_TOPIC", TOPIC.to_owned()),
        ]);
        let config = ApiConfig::from_lookup(|name| env.get(name).cloned()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(eventpipe_api::serve(config, listener, async {
            let _ = stopped.await;
        }));
        // Wait for readiness.
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (batch_requests, batch_rate) = drive(addr, 100, self.connections, self.secs).await;
        let (single_rate, _) = drive(addr, 1, self.single_connections, self.secs).await;
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        (batch_requests, batch_rate, single_rate)
    }
}

/// A tracing phase in its own process: its own embedded Kafka, tracing as
/// the environment says, through the services' own set-up.
async fn child() {
    let telemetry = eventpipe_service::telemetry::init("eventpipe-api").unwrap();
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic(TOPIC, 6).unwrap();
    let (_, batch_rate, single_rate) = Phases::from_env()
        .drive_api(&kafka.bootstrap_servers())
        .await;
    telemetry.shutdown();
    println!("RESULT {batch_rate} {single_rate}");
}

/// Counts the spans OTLP/HTTP requests carry.
async fn count_spans(
    axum::extract::State(spans): axum::extract::State<Arc<AtomicU64>>,
    body: bytes::Bytes,
) -> axum::http::StatusCode {
    use prost::Message;
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let n: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    spans.fetch_add(n as u64, Ordering::Relaxed);
    axum::http::StatusCode::OK
}

/// Runs each tracing mode in a child process, `rounds` times in turn;
/// prints the rates and the spans exported.
async fn tracing_cost(rounds: usize) {
    let spans = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(count_spans))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let modes: [(&str, Option<&str>); 3] = [
        ("off (no endpoint)", None),
        ("1 % sampled", Some("0.01")),
        ("100 % sampled", Some("1")),
    ];
    // Per mode: (batch events/s, singles/s, spans) of each round.
    let mut results: Vec<Vec<(f64, f64, u64)>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        for (i, (name, ratio)) in modes.iter().enumerate() {
            let before = spans.load(Ordering::Relaxed);
            let mut command = std::process::Command::new(std::env::current_exe().unwrap());
            command.env(CHILD, "1").env("RUST_LOG", "warn");
            for var in eventpipe_service::telemetry::VARS {
                command.env_remove(var.name);
            }
            if let Some(ratio) = ratio {
                command
                    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
                    .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
                    .env("OTEL_TRACES_SAMPLER_ARG", ratio);
            }
            let output = tokio::task::spawn_blocking(move || command.output())
                .await
                .unwrap()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: no result\n{stdout}\n{}",
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
            let mut rates = line.split(' ').map(|v| v.parse::<f64>().unwrap());
            let (batch, single) = (rates.next().unwrap(), rates.next().unwrap());
            let exported = spans.load(Ordering::Relaxed) - before;
            eprintln!(
                "  round {}: {name:<18} {batch:>9.0} events/s in batches, {single:>7.0} singles/s, {exported} spans",
                round + 1
            );
            results[i].push((batch, single, exported));
        }
    }
    let mean = |xs: &[(f64, f64, u64)], f: fn(&(f64, f64, u64)) -> f64| {
        xs.iter().map(f).sum::<f64>() / xs.len() as f64
    };
    let (off_batch, off_single) = (mean(&results[0], |r| r.0), mean(&results[0], |r| r.1));
    println!(
        "  tracing cost (mean of {rounds} round(s), each mode in its own process, taking turns):"
    );
    println!(
        "  {:<20}{:>16}{:>10}{:>14}{:>10}{:>16}",
        "", "batches (ev/s)", "vs off", "singles (/s)", "vs off", "spans exported"
    );
    for ((name, _), runs) in modes.iter().zip(&results) {
        let batch = mean(runs, |r| r.0);
        let single = mean(runs, |r| r.1);
        let exported: u64 = runs.iter().map(|r| r.2).sum();
        println!(
            "  {name:<20}{batch:>16.0}{:>9.1}%{single:>14.0}{:>9.1}%{exported:>16}",
            100.0 * (batch / off_batch - 1.0),
            100.0 * (single / off_single - 1.0),
        );
    }
    println!();
}

async fn run() {
    let phases = Phases::from_env();
    let (secs, connections, single_connections) =
        (phases.secs, phases.connections, phases.single_connections);
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

    let (batch_requests, batch_rate, single_rate) = phases.drive_api(&bootstrap).await;
    drop(kafka);

    println!();
    println!(
        "eventpipe ingest benchmark ({} cores; {connections} connections for batches, {single_connections} for singles; {secs} s per phase)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  raw rdkafka produce (acks=all, idempotent, lz4)  {raw_rate:>10.0} msg/s   ({raw_messages} messages)"
    );
    println!(
        "  API, batches of 100                              {batch_rate:>10.0} events/s ({:.0} req/s)",
        batch_requests
    );
    println!("  API, single events                               {single_rate:>10.0} req/s");
    println!(
        "  API batches / raw produce                        {:>10.1} %",
        100.0 * batch_rate / raw_rate
    );
    println!();
    if tracing_rounds > 0 {
        tracing_cost(tracing_rounds).await;
    }
}
