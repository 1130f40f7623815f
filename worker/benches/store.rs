//! Worker benchmark: events/s the worker stores from a pre-filled events
//! topic, and in the same run the PostgreSQL COPY rate for the same rows
//! into a table of the same shape (same columns, primary key and indexes),
//! so the worker's cost is a ratio to the fastest way into PostgreSQL.
//!
//! Run: `cargo bench -p eventpipe-worker --bench store`
//! (`BENCH_EVENTS`, default 500000; needs PostgreSQL at 127.0.0.1:5432 and `psql`.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_contract::{EventRecord, Rules, validate_event};
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_load::mix::Shape;
use eventpipe_worker::db::ScratchDatabase;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn stored(url: &str) -> f64 {
    let Ok(response) = reqwest::get(url).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("eventpipe_worker_events_stored_total ")
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let database = ScratchDatabase::create(SERVER, "eventpipe_bench")
        .await
        .unwrap();
    let (name, url) = (database.name().to_owned(), database.url.clone());

    // The values the API would have produced.
    let now = chrono::Utc::now();
    let shape = Shape {
        users: 5000,
        ..Shape::default()
    };
    let texts = eventpipe_load::bodies::sample(&shape, n);
    let records: Vec<EventRecord<'_>> = texts
        .iter()
        .map(|t| {
            let raw: &serde_json::value::RawValue = serde_json::from_slice(t).unwrap();
            validate_event(raw, now, &Rules::default()).unwrap()
        })
        .collect();

    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic("events", 6).unwrap();
    kafka.create_topic("events.dlq", 1).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2097152")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(n);
    for r in &records {
        let headers = OwnedHeaders::new().insert(Header {
            key: "eventpipe-schema-version",
            value: Some("1"),
        });
        let value = r.to_json();
        let record = FutureRecord::to("events")
            .key(r.user_id.as_bytes())
            .payload(&value)
            .headers(headers);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }

    // The worker, from offset 0 of the pre-filled topic.
    let vars: HashMap<String, String> = HashMap::from([
        (
            "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
            kafka.bootstrap_servers(),
        ),
        ("DATABASE_URL".to_owned(), url.clone()),
    ]);
    let config =
        eventpipe_worker::config::WorkerConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = format!("http://{}/metrics", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let worker = tokio::spawn(eventpipe_worker::serve(config, listener, async {
        let _ = stopped.await;
    }));
    // Time from the first row (group join excluded) to the last.
    let mut first_row = None;
    loop {
        let have = stored(&metrics).await;
        if have > 0.0 && first_row.is_none() {
            first_row = Some(Instant::now());
        }
        if have >= n as f64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "worker stalled at {have}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worker_secs = first_row.unwrap().elapsed().as_secs_f64();
    let _ = stop.send(());
    worker.await.unwrap().unwrap();

    // COPY the same rows into a table of the same shape.
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    sql_query("CREATE TABLE events_copy (LIKE events INCLUDING ALL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("{name}.csv"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (i, r) in records.iter().enumerate() {
        writeln!(
            file,
            "{},{},{},{},{},{},{},{},{},{}",
            r.event_id,
            csv_field(&r.user_id),
            csv_field(&r.event_type),
            csv_field(&r.source),
            eventpipe_contract::rfc3339::format(&r.timestamp),
            r.timestamp_raw
                .map(|t| csv_field(t.get()))
                .unwrap_or_default(),
            eventpipe_contract::rfc3339::format(&r.received_at),
            csv_field(r.payload.get()),
            i % 6,
            i,
        )
        .unwrap();
    }
    drop(file);
    let copy_started = Instant::now();
    let status = std::process::Command::new("psql")
        .args([url.as_str(), "-q", "-c"])
        .arg(format!(
            "\\copy events_copy (event_id, user_id, event_type, source, event_ts, timestamp_raw, received_at, payload, kafka_partition, kafka_offset) FROM '{}' WITH (FORMAT csv)",
            path.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let copy_secs = copy_started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    drop(conn);
    drop(database);

    let worker_rate = n as f64 / worker_secs;
    let copy_rate = n as f64 / copy_secs;
    println!();
    println!(
        "eventpipe worker benchmark ({} cores, {n} events, PostgreSQL at 127.0.0.1)",
        std::thread::available_parallelism().map_or(0, |c| c.get())
    );
    println!(
        "  worker: topic -> events table      {worker_rate:>10.0} events/s ({worker_secs:.2} s)"
    );
    println!("  COPY of the same rows (psql)       {copy_rate:>10.0} rows/s   ({copy_secs:.2} s)");
    println!(
        "  worker / COPY                      {:>10.1} %",
        100.0 * worker_rate / copy_rate
    );
    println!();
}
