//! Worker benchmark: events/s the worker stores from a pre-filled events
//! topic, with the anomaly rules off and then on, and in the same run the
//! PostgreSQL COPY rate for the same rows into a table of the same shape
//! (same columns, primary key and indexes), so the worker's cost is a
//! ratio to the fastest way into PostgreSQL and the rules' cost a ratio to
//! the worker without them.
//!
//! Run: `cargo bench -p eventpipe-worker --bench store`
//! (`BENCH_EVENTS`, default 500000; `WORKER_WRITE_LANES`, `WORKER_BATCH_SIZE`
//! and `DATABASE_POOL_SIZE` are passed to the worker when set; needs
//! PostgreSQL at 127.0.0.1:5432 and `psql`.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_contract::{EventRecord, Rules, validate_event};
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_sample::mix::Shape;
use eventpipe_store::ScratchDatabase;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The allocator the `eventpipe-worker` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// (rows stored, offsets skipped) from the worker's metrics.
async fn stored(url: &str) -> (f64, f64) {
    let Ok(response) = reqwest::get(url).await else {
        return (0.0, 0.0);
    };
    let text = response.text().await.unwrap_or_default();
    let sum = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    (
        sum("eventpipe_worker_events_stored_total "),
        sum("eventpipe_worker_offsets_skipped_total"),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

#[derive(diesel::QueryableByName)]
struct ByRule {
    #[diesel(sql_type = diesel::sql_types::Text)]
    rule: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs a worker (group `group`) over the pre-filled topic into `url` and
/// times it from the first row stored (group join excluded) to the last.
async fn time_worker(
    kafka: &EmbeddedKafka,
    url: &str,
    group: &str,
    anomalies: bool,
    n: usize,
) -> f64 {
    let mut vars: HashMap<String, String> = HashMap::from([
        (
            "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
            kafka.bootstrap_servers(),
        ),
        ("DATABASE_URL".to_owned(), url.to_owned()),
        ("KAFKA_GROUP_ID".to_owned(), group.to_owned()),
        ("WORKER_ANOMALIES".to_owned(), anomalies.to_string()),
        // The events are yesterday's: the worker makes the partitions of
        // the days it keeps, so they land in their day's partition as
        // current events do (not in the default one). Nothing is old
        // enough to be removed.
        ("RETENTION_EVENTS_DAYS".to_owned(), "7".to_owned()),
        ("RETENTION_ANOMALIES_DAYS".to_owned(), "7".to_owned()),
    ]);
    // Worker settings to compare, from the benchmark's environment.
    for name in [
        "WORKER_WRITE_LANES",
        "WORKER_BATCH_SIZE",
        "DATABASE_POOL_SIZE",
    ] {
        if let Ok(value) = std::env::var(name) {
            vars.insert(name.to_owned(), value);
        }
    }
    let config =
        eventpipe_worker::config::WorkerConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    // A deployed database has its partitions already: make them before
    // the clock starts, so the worker's own pass at start-up finds them.
    eventpipe_worker::maintenance::pass(url, config.maintenance, chrono::Utc::now(), |_| {})
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = format!("http://{}/metrics", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let worker = tokio::spawn(eventpipe_worker::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let mut first_row = None;
    let mut progress = (0.0, Instant::now());
    loop {
        let (have, skipped) = stored(&metrics).await;
        assert_eq!(
            skipped, 0.0,
            "the embedded Kafka deleted part of the backlog before it was read"
        );
        if have > 0.0 && first_row.is_none() {
            first_row = Some(Instant::now());
        }
        if have >= n as f64 {
            break;
        }
        if have > progress.0 {
            progress = (have, Instant::now());
        }
        assert!(
            progress.1.elapsed() < Duration::from_secs(60)
                && started.elapsed() < Duration::from_secs(600),
            "worker stalled at {have}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = first_row.unwrap().elapsed().as_secs_f64();
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    secs
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
    // Realistic in time and place: six hours of traffic in order, and
    // each user logging in from a home city (2 % from elsewhere), so the
    // rules see what they would in production rather than one instant.
    // 08:00–14:00 UTC yesterday: outside the unusual hours.
    let start = (chrono::Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(8, 0, 0)
        .unwrap()
        .and_utc();
    let cities = [
        "Berlin, DE",
        "Paris, FR",
        "Austin, US",
        "Lagos, NG",
        "Pune, IN",
    ];
    let texts: Vec<Vec<u8>> = eventpipe_sample::bodies(&shape, n)
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut event: serde_json::Value = serde_json::from_slice(body).unwrap();
            let ts = start + chrono::Duration::microseconds((i as i64) * 21_600_000_000 / n as i64);
            event["timestamp"] = serde_json::json!(ts.to_rfc3339());
            if event["type"] == "login" {
                let user = event["user_id"].as_str().unwrap().to_owned();
                let home =
                    cities[user.len() % 2 + (user.bytes().map(usize::from).sum::<usize>() % 4)];
                let location = if i % 50 == 0 { "Osaka, JP" } else { home };
                event["payload"]["location"] = serde_json::json!(location);
            }
            serde_json::to_vec(&event).unwrap()
        })
        .collect();
    let records: Vec<EventRecord<'_>> = texts
        .iter()
        .map(|t| {
            let raw: &serde_json::value::RawValue = serde_json::from_slice(t).unwrap();
            validate_event(raw, now, &Rules::default()).unwrap()
        })
        .collect();

    let kafka = EmbeddedKafka::start(1).unwrap();
    // The embedded cluster keeps 5 MiB per partition: spread the backlog
    // over enough partitions that none of it is deleted before it is read.
    kafka.create_topic("events", 24).unwrap();
    kafka.create_topic("events.dlq", 1).unwrap();
    kafka.create_topic("anomalies", 3).unwrap();
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

    // The worker, from offset 0 of the pre-filled topic: once with the
    // anomaly rules off, once with the defaults on, each into its own
    // database, in one run.
    // Twice each, alternating, best of two: the machine's noise is larger
    // than the difference being measured.
    let mut plain = f64::MAX;
    let mut detecting = f64::MAX;
    let mut anomalies = 0;
    for round in 0..2 {
        let plain_db = ScratchDatabase::create(SERVER, "eventpipe_bench")
            .await
            .unwrap();
        let group = format!("bench-plain-{round}");
        plain = plain.min(time_worker(&kafka, &plain_db.url, &group, false, n).await);
        drop(plain_db);
        let detecting_db = ScratchDatabase::create(SERVER, "eventpipe_bench")
            .await
            .unwrap();
        let group = format!("bench-rules-{round}");
        detecting = detecting.min(time_worker(&kafka, &detecting_db.url, &group, true, n).await);
        let mut conn = AsyncPgConnection::establish(&detecting_db.url)
            .await
            .unwrap();
        let rows: Vec<ByRule> =
            sql_query("SELECT rule, count(*) AS n FROM anomalies GROUP BY rule ORDER BY n DESC")
                .load(&mut conn)
                .await
                .unwrap();
        anomalies = rows.iter().map(|r| r.n).sum();
        if round == 0 {
            let by_rule: Vec<String> = rows.iter().map(|r| format!("{} {}", r.rule, r.n)).collect();
            println!("anomalies by rule: {}", by_rule.join(", "));
        }
        drop(conn);
        drop(detecting_db);
    }
    let worker_secs = plain;

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
            i % 24,
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
    let detecting_rate = n as f64 / detecting;
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
    println!(
        "  worker, default anomaly rules on   {detecting_rate:>10.0} events/s ({detecting:.2} s, {anomalies} anomalies)"
    );
    println!(
        "  overhead of the rules              {:>10.1} %",
        100.0 * (1.0 - detecting_rate / worker_rate)
    );
    println!();
}
