//! Retention benchmark: removing a day of events by dropping its partition
//! (what retention does) against `DELETE` of the same number of rows, while
//! a writer keeps storing batches of 100 current events the way the worker
//! does; printed: how long each removal took (a retention pass counts the
//! day's rows before it drops them; the bare `DROP TABLE` is timed too), the writer's batch latency
//! while it ran (p50, p99, longest) beside the writer alone, and the table's
//! size after. Then the drop while a 3-second read holds the table: with
//! the worker's lock timeout the writer waits at most about that timeout;
//! without one it waits for the whole read.
//!
//! Run: `cargo bench -p eventpipe-worker --bench retention`
//! (`BENCH_DAY_EVENTS`, default 5000000; needs PostgreSQL at 127.0.0.1:5432.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use eventpipe_store::partitions::{self, Layout, Partition, day_start};
use eventpipe_store::retention::{self, Plan, Removal};
use eventpipe_store::{DEFAULT_DEDUP_WINDOW, DbPool, NewEvent, ScratchDatabase, store_batch};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const LOCK_TIMEOUT: Duration = Duration::from_millis(200);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Batches of 100 current events, stored one after another until `stop`;
/// returns each batch's (start, latency).
async fn write_until(pool: DbPool, stop: Arc<AtomicBool>) -> Vec<(Instant, Duration)> {
    let mut latencies = Vec::new();
    let mut offset = 0i64;
    while !AtomicBool::load(&stop, Ordering::Relaxed) {
        let now = Utc::now();
        let rows: Vec<NewEvent> = (0..100)
            .map(|i| {
                offset += 1;
                NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    user_id: format!("writer-{}", i % 20),
                    event_type: "click".to_owned(),
                    source: "bench".to_owned(),
                    event_ts: now,
                    timestamp_raw: None,
                    received_at: now,
                    payload: "{}".to_owned(),
                    kafka_partition: 0,
                    kafka_offset: offset,
                }
            })
            .collect();
        let started = Instant::now();
        store_batch(&pool, &rows, DEFAULT_DEDUP_WINDOW)
            .await
            .unwrap();
        latencies.push((started, started.elapsed()));
    }
    latencies
}

/// p50, p99 and the longest of the batches that started within `window`.
fn latency(batches: &[(Instant, Duration)], window: (Instant, Instant)) -> String {
    let mut within: Vec<Duration> = batches
        .iter()
        .filter(|(start, took)| *start + *took >= window.0 && *start <= window.1)
        .map(|(_, took)| *took)
        .collect();
    within.sort();
    if within.is_empty() {
        return "no batch".to_owned();
    }
    let at = |q: f64| within[((within.len() - 1) as f64 * q).round() as usize];
    format!(
        "writer batches: {} | p50 {:.1} ms | p99 {:.1} ms | longest {:.1} ms",
        within.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        within[within.len() - 1].as_secs_f64() * 1000.0
    )
}

/// Runs `operation` while the writer writes; returns what it took and the
/// writer's latency meanwhile.
async fn beside_writer<F: Future<Output = ()>>(pool: &DbPool, operation: F) -> (Duration, String) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(pool.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    operation.await;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let batches = writer.await.unwrap();
    (ended - started, latency(&batches, (started, ended)))
}

async fn fill(conn: &mut AsyncPgConnection, day: DateTime<Utc>, n: i64) {
    sql_query(format!(
        "INSERT INTO events (event_id, user_id, event_type, source, event_ts, received_at, payload, kafka_partition, kafka_offset)
         SELECT gen_random_uuid(), 'user-' || (i % 100000),
                (ARRAY['login','purchase','click','api_call','heartbeat','file_access'])[1 + i % 6], 'api',
                t, t, jsonb_build_object('n', i, 'location', 'Berlin, DE'), (i % 6)::int, i
         FROM generate_series(0, {n} - 1) AS i,
              LATERAL (SELECT timestamptz '{}' + i * (86400.0 / {n}) * interval '1 second' AS t) AS at",
        day.to_rfc3339()
    ))
    .execute(conn)
    .await
    .unwrap();
}

async fn partition(conn: &mut AsyncPgConnection, day: DateTime<Utc>) -> Partition {
    partitions::list(conn, "events")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.from == Some(day))
        .unwrap()
}

async fn drop_partition(conn: &mut AsyncPgConnection, partition: Partition, timeout: Duration) {
    let plan = Plan {
        horizons: Vec::new(),
        removals: vec![Removal::Partition {
            parent: "events".to_owned(),
            partition,
        }],
        moves_horizons: false,
    };
    retention::apply(conn, &plan, timeout, Duration::ZERO, |_| {})
        .await
        .unwrap();
}

async fn size(conn: &mut AsyncPgConnection) -> String {
    #[derive(diesel::QueryableByName)]
    struct Size {
        #[diesel(sql_type = diesel::sql_types::Text)]
        size: String,
    }
    let s: Size = sql_query(
        "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) AS size FROM pg_inherits WHERE inhparent = 'events'::regclass",
    )
    .get_result(conn)
    .await
    .unwrap();
    s.size
}

/// Holds a read of the events table open for `hold` on its own connection.
async fn long_read(url: String, hold: Duration) {
    let mut reader = AsyncPgConnection::establish(&url).await.unwrap();
    reader
        .batch_execute(&format!(
            "BEGIN; SELECT count(*) FROM events WHERE event_ts >= now() - interval '1 hour'; SELECT pg_sleep({}); COMMIT;",
            hold.as_secs_f64()
        ))
        .await
        .unwrap();
}

async fn run() {
    let n: i64 = std::env::var("BENCH_DAY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let database = ScratchDatabase::create(SERVER, "eventpipe_bench_retention")
        .await
        .unwrap();
    let url = database.url.clone();
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let today = day_start(Utc::now());
    let day = |back: i64| today - chrono::Duration::days(back);
    let layout = Layout {
        span_days: 1,
        lock_timeout: LOCK_TIMEOUT,
    };
    partitions::prepare(&mut conn, "events", day(4), day(-2), layout)
        .await
        .unwrap();
    let started = Instant::now();
    for back in [4, 3, 2] {
        fill(&mut conn, day(back), n).await;
    }
    conn.batch_execute("VACUUM ANALYZE events").await.unwrap();
    println!(
        "filled three days of {n} events each in {:.0} s; events take {}",
        started.elapsed().as_secs_f64(),
        size(&mut conn).await
    );
    let pool = eventpipe_store::pool(&url, 2).await.unwrap();

    let (_, alone) = beside_writer(&pool, tokio::time::sleep(Duration::from_secs(3))).await;
    println!("writer alone (3 s)                     | {alone}");

    // What a retention pass does: count the day's rows (for the log and
    // the metric), then drop the partition under the lock timeout.
    let doomed = partition(&mut conn, day(4)).await;
    let (took, beside) =
        beside_writer(&pool, drop_partition(&mut conn, doomed, LOCK_TIMEOUT)).await;
    println!(
        "retention pass: count, drop {:>8.1} ms | {beside} | events then take {}",
        took.as_secs_f64() * 1000.0,
        size(&mut conn).await
    );
    // The DROP alone, which is all that takes the table's lock.
    let bare = partition(&mut conn, day(3)).await;
    let drop = async {
        conn.batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '200ms'; DROP TABLE \"{}\"; COMMIT;",
            bare.table
        ))
        .await
        .unwrap();
    };
    let (took, beside) = beside_writer(&pool, drop).await;
    println!(
        "the DROP TABLE alone        {:>8.1} ms | {beside} | events then take {}",
        took.as_secs_f64() * 1000.0,
        size(&mut conn).await
    );

    let (from, to) = (day(2), day(1));
    let delete = async {
        sql_query(format!(
            "DELETE FROM events WHERE event_ts >= '{}' AND event_ts < '{}'",
            from.to_rfc3339(),
            to.to_rfc3339()
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    };
    let (took, beside) = beside_writer(&pool, delete).await;
    println!(
        "DELETE the day's rows       {:>8.1} ms | {beside} | events then take {} (dead rows until vacuum)",
        took.as_secs_f64() * 1000.0,
        size(&mut conn).await
    );

    // A 3-second read holds the table; the drop asks for its lock.
    for (label, timeout, back) in [
        (
            "drop behind a 3 s read, 200 ms lock timeout",
            LOCK_TIMEOUT,
            2,
        ),
        (
            "drop behind a 3 s read, no lock timeout   ",
            Duration::from_secs(60),
            1,
        ),
    ] {
        let target = partition(&mut conn, day(back)).await;
        let reader = tokio::spawn(long_read(url.clone(), Duration::from_secs(3)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (took, beside) = beside_writer(&pool, drop_partition(&mut conn, target, timeout)).await;
        reader.await.unwrap();
        println!("{label} {:>8.1} ms | {beside}", took.as_secs_f64() * 1000.0);
    }
}
