//! Ingestion benchmark: events/s the API accepts (202, Kafka acknowledged)
//! for batches of 100 and for single events, against an embedded Kafka, and
//! in the same run the raw rdkafka produce rate for the same messages with
//! the same producer settings, so the API's overhead is a ratio measured on
//! one machine at one time.
//!
//! Run: `cargo bench -p eventpipe-api --bench ingest`
//! (`BENCH_SECS`, default 10 per phase; `BENCH_CONNECTIONS`, default 32;
//! `BENCH_SINGLE_CONNECTIONS`, default 256;
//! `BENCH_RAW_MESSAGES`, default 1000000.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use eventpipe_api::config::ApiConfig;
use eventpipe_contract::{Rules, validate_event};
use eventpipe_embedded_kafka::EmbeddedKafka;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::{Value, json};

const TOPIC: &str = "events";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic event: a few payload fields, like the known types carry.
fn sample_event(i: usize) -> Value {
    match i % 4 {
        0 => json!({"user_id": format!("user-{}", i % 1000), "type": "login", "source": "web",
                    "payload": {"success": !i.is_multiple_of(7), "location": "DE", "ip_address": "203.0.113.7", "login_method": "password"}}),
        1 => {
            json!({"user_id": format!("user-{}", i % 1000), "type": "purchase", "source": "mobile",
                    "payload": {"amount": (i % 2000) as f64 + 0.99, "currency": "EUR", "product_id": format!("p-{}", i % 50)}})
        }
        2 => json!({"user_id": format!("user-{}", i % 1000), "type": "api_call",
                    "payload": {"status_code": 200, "endpoint": "/api/orders", "method": "GET", "response_time_ms": 42}}),
        _ => json!({"user_id": format!("user-{}", i % 1000), "type": "heartbeat",
                    "payload": {"heart_rate": 60 + (i % 40)}}),
    }
}

/// Sends `bodies` round-robin over `connections` keep-alive connections for
/// `secs`; returns (requests answered 2xx, events accepted).
async fn drive(
    addr: std::net::SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    per_request: u64,
    connections: usize,
    secs: u64,
) -> (u64, u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..connections {
        let (stop, ok, failed, bodies) = (stop.clone(), ok.clone(), failed.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let request = Request::post("/events")
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(bodies[i % bodies.len()].clone()))
                    .unwrap();
                i += connections;
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                let _ = response.into_body().collect().await.unwrap();
                if status.as_u16() == 202 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let requests = ok.load(Ordering::Relaxed);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "some requests were not accepted"
    );
    (requests, requests * per_request, elapsed)
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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let secs: u64 = env_or("BENCH_SECS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 32);
    // One event per request is latency-bound (each waits for Kafka's
    // acknowledgement, linger included), so it takes more clients in flight.
    let single_connections: usize = env_or("BENCH_SINGLE_CONNECTIONS", 256);
    let raw_messages: usize = env_or("BENCH_RAW_MESSAGES", 1_000_000);
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic(TOPIC, 6).unwrap();
    let bootstrap = kafka.bootstrap_servers();

    // The exact values the API would produce for these events.
    let now = chrono::Utc::now();
    let texts: Vec<String> = (0..1000).map(|i| sample_event(i).to_string()).collect();
    let values: Vec<(String, Vec<u8>)> = texts
        .iter()
        .map(|t| {
            let raw: &serde_json::value::RawValue = serde_json::from_str(t).unwrap();
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

    let env: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone()),
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

    let batches: Arc<Vec<Bytes>> = Arc::new(
        (0..50)
            .map(|b| {
                let batch: Vec<Value> = (0..100).map(|i| sample_event(b * 100 + i)).collect();
                Bytes::from(Value::Array(batch).to_string())
            })
            .collect(),
    );
    let singles: Arc<Vec<Bytes>> = Arc::new(
        (0..1000)
            .map(|i| Bytes::from(sample_event(i).to_string()))
            .collect(),
    );

    let (batch_requests, batch_events, batch_elapsed) =
        drive(addr, batches, 100, connections, secs).await;
    let (single_requests, _, single_elapsed) =
        drive(addr, singles, 1, single_connections, secs).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let batch_rate = batch_events as f64 / batch_elapsed.as_secs_f64();
    let single_rate = single_requests as f64 / single_elapsed.as_secs_f64();
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
        batch_requests as f64 / batch_elapsed.as_secs_f64()
    );
    println!("  API, single events                               {single_rate:>10.0} req/s");
    println!(
        "  API batches / raw produce                        {:>10.1} %",
        100.0 * batch_rate / raw_rate
    );
    println!();
}
