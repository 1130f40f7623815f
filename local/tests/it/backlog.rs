//! 202 means stored at any offered rate: the local run (embedded Kafka,
//! which keeps only the newest 5 MiB of a partition) is driven with three
//! times that while its worker is held back by a lock on the events
//! table. Every event answered 202 is stored once, the excess was refused
//! with 503, and no offset was skipped. Without the bound, the same drive
//! against the same broker loses events: the test below it shows that.
//!
//! The worker's prefetch is cut to 1 MiB ([`PREFETCH`]): as in a long
//! overload, where its 64 MiB default fills too, its reading position then
//! stays behind what the broker deletes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use eventpipe_embedded_kafka::{EmbeddedKafka, KEEPS_BYTES_PER_PARTITION};
use eventpipe_local::Pipeline;
use eventpipe_store::ScratchDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// `KAFKA_CONFIG` holding the worker's consumer to about 1 MiB read ahead.
const PREFETCH: &str = "queued.max.messages.kbytes=1024";
/// Events per request, each carrying about 2 KiB that compression cannot shrink.
const BATCH: usize = 50;
/// Requests sent: about three times what one partition keeps.
const REQUESTS: usize = 150;

/// What a drive got back.
#[derive(Debug, Default)]
struct Drive {
    accepted: Vec<Uuid>,
    /// 503 `overloaded` answers, each with `Retry-After`.
    refused: usize,
    /// Any other answer: (status, body).
    other: Vec<(u16, String)>,
    /// JSON bytes of the events answered 202.
    accepted_bytes: usize,
}

fn batch(request: usize) -> Value {
    let events = (0..BATCH)
        .map(|i| {
            let blob: String = (0..62)
                .map(|_| Uuid::new_v4().simple().to_string())
                .collect();
            json!({
                "event_id": Uuid::now_v7(),
                "user_id": format!("user-{}", (request * BATCH + i) % 97),
                "type": "click",
                "payload": {"element": "button", "blob": blob},
            })
        })
        .collect();
    Value::Array(events)
}

/// Posts [`REQUESTS`] batches from four connections.
async fn drive(api: &str) -> Drive {
    let next = Arc::new(AtomicUsize::new(0));
    let connections: Vec<_> = (0..4)
        .map(|_| tokio::spawn(connection(format!("{api}/events"), next.clone())))
        .collect();
    let mut all = Drive::default();
    for connection in connections {
        let d = connection.await.unwrap();
        all.accepted.extend(d.accepted);
        all.refused += d.refused;
        all.other.extend(d.other);
        all.accepted_bytes += d.accepted_bytes;
    }
    all
}

/// One connection's share of [`drive`].
async fn connection(url: String, next: Arc<AtomicUsize>) -> Drive {
    let http = reqwest::Client::new();
    let mut drive = Drive::default();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= REQUESTS {
            return drive;
        }
        let text = batch(n).to_string();
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(text.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let answer = response.text().await.unwrap();
        match status {
            202 => {
                let receipt: Value = serde_json::from_str(&answer).unwrap();
                for r in receipt["results"].as_array().unwrap() {
                    drive
                        .accepted
                        .push(r["event_id"].as_str().unwrap().parse().unwrap());
                }
                drive.accepted_bytes += text.len();
            }
            503 if retry_after && answer.contains("urn:eventpipe:problem:overloaded") => {
                drive.refused += 1;
            }
            _ => drive.other.push((status, answer)),
        }
    }
}

/// The local run, with a database of its own and `extra` settings.
async fn local_run(extra: &[(&str, &str)]) -> (ScratchDatabase, Pipeline) {
    let db = ScratchDatabase::create(SERVER, "eventpipe_backlog")
        .await
        .unwrap();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("API_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("WORKER_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("WORKER_BATCH_WAIT_MS".to_owned(), "20".to_owned()),
    ]);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let pipeline = Pipeline::start(move |name| vars.get(name).cloned())
        .await
        .unwrap();
    (db, pipeline)
}

/// Holds `LOCK TABLE events IN ACCESS EXCLUSIVE MODE` until dropped or
/// released: the worker can neither read nor write events meanwhile.
struct Held(AsyncPgConnection);

async fn hold_events_table(url: &str) -> Held {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    conn.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    Held(conn)
}

impl Held {
    async fn release(mut self) {
        self.0.batch_execute("ROLLBACK").await.unwrap();
    }
}

/// (rows, distinct ids) of `ids` in the events table.
async fn stored(url: &str, ids: &[Uuid]) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        rows: i64,
        #[diesel(sql_type = BigInt)]
        distinct: i64,
    }
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let c: Counts = sql_query(
        "SELECT count(*) AS rows, count(DISTINCT event_id) AS distinct FROM events WHERE event_id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .get_result(&mut conn)
    .await
    .unwrap();
    (c.rows, c.distinct)
}

/// Waits until the worker at `base` holds a partition, so that it is
/// the held-back worker, not a late one, that the drive outruns.
async fn wait_assigned(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(base, "eventpipe_worker_assigned_partitions").await < 1.0 {
        assert!(Instant::now() < deadline, "the worker was never assigned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

const SKIPPED: &str = "eventpipe_worker_offsets_skipped_total{partition=\"0\",topic=\"events\"}";

/// `eventpipe status --json` against `pipeline`: its exit status and report.
fn status(pipeline: &Pipeline, database_url: &str) -> (i32, Value) {
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_eventpipe"))
            .args(["status", "--json"])
            .env_clear()
            .env("EVENTPIPE_API_URL", format!("http://{}", pipeline.api))
            .env(
                "EVENTPIPE_WORKER_URL",
                format!("http://{}", pipeline.worker),
            )
            .env("DATABASE_URL", database_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", &pipeline.bootstrap)
            .output()
    })
    .unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap_or(-1), report)
}

/// Messages of the events topic the workers' group has not committed.
fn uncommitted(bootstrap: &str) -> i64 {
    let client: rdkafka::consumer::BaseConsumer =
        eventpipe_service::kafka::client_config(bootstrap, "test", &[])
            .set("group.id", eventpipe_contract::kafka::GROUP_ID)
            .create()
            .unwrap();
    eventpipe_service::kafka::group_lag(&client, "events", Duration::from_secs(5))
        .unwrap()
        .iter()
        .map(|l| l.lag)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_run_refuses_what_its_broker_could_not_keep_and_stores_every_202() {
    // One partition: all the drive lands where the broker keeps 5 MiB.
    let (db, pipeline) =
        local_run(&[("KAFKA_EVENTS_PARTITIONS", "1"), ("KAFKA_CONFIG", PREFETCH)]).await;
    let api = format!("http://{}", pipeline.api);
    let worker = format!("http://{}", pipeline.worker);

    wait_assigned(&worker).await;
    let held = hold_events_table(&db.url).await;
    let drive = drive(&api).await;
    assert!(drive.other.is_empty(), "{:?}", drive.other);
    assert!(drive.refused > 0, "the drive never reached the bound");
    assert!(
        drive.accepted_bytes < KEEPS_BYTES_PER_PARTITION as usize,
        "accepted {} bytes of JSON into one partition",
        drive.accepted_bytes
    );
    // Readiness says why.
    let ready = reqwest::get(format!("{api}/ready")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["backlog"], false, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("API_MAX_BACKLOG_BYTES"),
        "{body}"
    );
    let refused = metric(
        &api,
        "eventpipe_api_backlog_refused_events_total{bound=\"bytes\"}",
    )
    .await;
    assert_eq!(refused, (drive.refused * BATCH) as f64);
    // `eventpipe status` shows the backlog, how old it is, and that
    // nothing was lost; it exits 1 while the API refuses events.
    let status = status(&pipeline, &db.url);
    assert_eq!(status.0, 1);
    let s = &status.1;
    assert_eq!(s["api"]["ready"]["body"]["backlog"], false, "{s}");
    let partition = &s["kafka"]["topics"][0]["partitions"][0];
    assert_eq!(partition["lag"], drive.accepted.len(), "{s}");
    assert!(
        partition["oldest_unconsumed_age_secs"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    assert_eq!(s["offsets_skipped"], 0, "{s}");
    assert_eq!(s["warnings"], json!([]), "{s}");

    // The worker gets the table back: every 202'd event is stored, once.
    held.release().await;
    let accepted = drive.accepted.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&db.url, &drive.accepted).await.0 < accepted {
        assert!(Instant::now() < deadline, "not all accepted events stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stored(&db.url, &drive.accepted).await, (accepted, accepted));
    assert_eq!(metric(&worker, SKIPPED).await, 0.0, "offsets were skipped");

    // Committed, the charges go: events are accepted again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = reqwest::Client::new()
            .post(format!("{api}/events"))
            .header("content-type", "application/json")
            .body(batch(0).to_string())
            .send()
            .await
            .unwrap();
        if response.status() == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stopped = pipeline.stop().await.unwrap();
    assert_eq!(stopped.abandoned, 0, "the stop drains what was accepted");
}

/// The control: the API without the bound, the same broker, the same
/// drive and the same held-back worker. Events answered 202 are lost,
/// which is what the test above would catch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_bound_the_same_drive_loses_accepted_events() {
    let db = ScratchDatabase::create(SERVER, "eventpipe_backlog")
        .await
        .unwrap();
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic("events", 1).unwrap();
    kafka.create_topic("events.dlq", 1).unwrap();
    kafka.create_topic("anomalies", 3).unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers()),
        ("KAFKA_LINGER_MS", "5".to_owned()),
        ("DATABASE_URL", db.url.clone()),
        ("WORKER_BATCH_WAIT_MS", "20".to_owned()),
    ]);
    let lookup = |name: &str| vars.get(name).cloned();
    let api_config = eventpipe_api::config::ApiConfig::from_lookup(lookup).unwrap();
    assert!(!api_config.backlog.any());
    let worker_config = eventpipe_worker::config::WorkerConfig::from_lookup(|name| match name {
        "KAFKA_CONFIG" => Some(PREFETCH.to_owned()),
        _ => lookup(name),
    })
    .unwrap();
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let worker = format!("http://{}", worker_listener.local_addr().unwrap());
    let api_task = tokio::spawn(eventpipe_api::serve(
        api_config,
        api_listener,
        std::future::pending(),
    ));
    let worker_task = tokio::spawn(eventpipe_worker::serve(
        worker_config,
        worker_listener,
        std::future::pending(),
    ));
    for base in [&api, &worker] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reqwest::get(format!("{base}/ready"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "{base} not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    wait_assigned(&worker).await;
    let held = hold_events_table(&db.url).await;
    let drive = drive(&api).await;
    assert!(drive.other.is_empty(), "{:?}", drive.other);
    assert_eq!(drive.refused, 0);
    assert_eq!(drive.accepted.len(), REQUESTS * BATCH);
    held.release().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let bootstrap = kafka.bootstrap_servers();
    while tokio::task::block_in_place(|| uncommitted(&bootstrap)) > 0 {
        assert!(Instant::now() < deadline, "the worker never caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rows, _) = stored(&db.url, &drive.accepted).await;
    let lost = drive.accepted.len() as i64 - rows;
    assert!(
        lost > 0,
        "nothing lost: the drive is too weak to test the bound"
    );
    assert_eq!(metric(&worker, SKIPPED).await, lost as f64);
    let unique: HashSet<&Uuid> = drive.accepted.iter().collect();
    assert_eq!(unique.len(), drive.accepted.len());
    api_task.abort();
    worker_task.abort();
}

/// Messages the events topic holds, over its partitions.
fn held(bootstrap: &str) -> i64 {
    use rdkafka::consumer::Consumer;
    let client: rdkafka::consumer::BaseConsumer =
        eventpipe_service::kafka::client_config(bootstrap, "test", &[])
            .create()
            .unwrap();
    (0..6)
        .map(|p| {
            let (low, high) = client
                .fetch_watermarks("events", p, Duration::from_secs(5))
                .unwrap();
            high - low
        })
        .sum()
}

/// A redrive never has more than 256 KiB on a partition that the workers
/// have not committed (the room the byte bound keeps for it): with the
/// worker held back it sends that much and waits, and finishes once the
/// worker catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_waits_for_the_workers_past_its_room() {
    let (db, pipeline) = local_run(&[]).await;
    let api = format!("http://{}", pipeline.api);
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute("ALTER TABLE events ADD CONSTRAINT held_back CHECK (user_id <> 'redriven')")
        .await
        .unwrap();
    // 40 events of one user, 40 KB each: 1.6 MB, refused by the database
    // into the DLQ.
    let blob: String = (0..1250)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect();
    for _ in 0..4 {
        let events: Vec<Value> = (0..10)
            .map(|_| json!({"user_id": "redriven", "type": "click", "payload": {"blob": blob}}))
            .collect();
        let response = reqwest::Client::new()
            .post(format!("{api}/events"))
            .json(&events)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let bootstrap = pipeline.bootstrap.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::task::block_in_place(|| uncommitted(&bootstrap)) > 0 {
        assert!(Instant::now() < deadline, "the worker never took them");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = tokio::task::block_in_place(|| held(&bootstrap));
    assert_eq!(before, 40);
    conn.batch_execute("ALTER TABLE events DROP CONSTRAINT held_back")
        .await
        .unwrap();

    let held_back = hold_events_table(&db.url).await;
    let mut redrive = std::process::Command::new(env!("CARGO_BIN_EXE_eventpipe"))
        .args([
            "dlq",
            "redrive",
            "--reason",
            "refused_by_database",
            "--json",
        ])
        .env_clear()
        .env("EVENTPIPE_API_URL", &api)
        .env(
            "EVENTPIPE_WORKER_URL",
            format!("http://{}", pipeline.worker),
        )
        .env("DATABASE_URL", &db.url)
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = tokio::task::block_in_place(|| held(&bootstrap)) - before;
    // 256 KiB holds 6 of these (about 41 KB each as stored), not 7.
    assert!(
        (4..=6).contains(&sent),
        "{sent} sent while the worker was held back"
    );
    assert!(
        redrive.try_wait().unwrap().is_none(),
        "the redrive did not wait"
    );

    held_back.release().await;
    let output = tokio::task::block_in_place(|| redrive.wait_with_output()).unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["redriven"], 40, "{report}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stored = 0;
    while stored < 40 {
        assert!(Instant::now() < deadline, "{stored} of 40 stored");
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let n: N = sql_query("SELECT count(*) AS n FROM events WHERE user_id = 'redriven'")
            .get_result(&mut conn)
            .await
            .unwrap();
        stored = n.n;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pipeline.stop().await.unwrap();
}
