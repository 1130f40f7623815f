//! Analytics benchmark: latency of the worker's count endpoints over HTTP
//! with 10 million stored events (a week of them, seeded with COPY, the
//! rollups built as the worker builds them), against the plain `count(*)`
//! over the events table in the same run.
//!
//! Run: `cargo bench -p eventpipe-worker --bench analytics`
//! (`BENCH_EVENTS`, default 10000000; `BENCH_REQUESTS` per query, default
//! 300; needs PostgreSQL at 127.0.0.1:5432 and `psql`. Seeding 10M rows
//! takes a few minutes; the database is dropped at the end unless
//! `BENCH_KEEP=1`, which also reuses a kept one.) The events go to their
//! days' partitions, made first as a worker keeping a week makes them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_store::ScratchDatabase;
use eventpipe_store::partitions::{self, Layout};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const TYPES: [(&str, u32); 10] = [
    ("page_view", 30),
    ("click", 20),
    ("api_call", 15),
    ("heartbeat", 10),
    ("login", 8),
    ("search", 6),
    ("purchase", 4),
    ("logout", 3),
    ("signup", 2),
    ("error", 2),
];
const SOURCES: [&str; 4] = ["web", "ios", "android", "api"];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Streams `n` events spread evenly over `[start, start + span)` into
/// `events` through `psql \copy` (secondary indexes dropped for the load
/// and rebuilt after, as a bulk load does), then builds the rollups and
/// some anomalies.
async fn seed(url: &str, n: usize, start: DateTime<Utc>, span: TimeDelta) {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    // The week's day partitions, as a worker keeping a week makes them.
    let layout = Layout {
        span_days: 1,
        lock_timeout: std::time::Duration::from_secs(5),
    };
    for table in partitions::PARTITIONED {
        partitions::prepare(
            &mut conn,
            table,
            start,
            start + span + TimeDelta::days(2),
            layout,
        )
        .await
        .unwrap();
    }
    conn.batch_execute(
        "DROP INDEX events_event_ts_idx, events_user_id_event_ts_idx, events_event_type_event_ts_idx",
    )
    .await
    .unwrap();
    let mut psql = std::process::Command::new("psql")
        .args([
            url,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "\\copy events (event_id, user_id, event_type, source, event_ts, received_at, payload, kafka_partition, kafka_offset) FROM STDIN WITH (FORMAT csv)",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("psql must be installed");
    let total_weight: u32 = TYPES.iter().map(|t| t.1).sum();
    let step_us = span.num_microseconds().unwrap() / n as i64;
    {
        let mut out = BufWriter::with_capacity(1 << 20, psql.stdin.take().unwrap());
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..n {
            let r = next();
            let mut pick = (r % u64::from(total_weight)) as u32;
            let kind = TYPES
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .map_or("page_view", |t| t.0);
            let source = SOURCES[((r >> 20) % 4) as usize];
            let user = (r >> 24) % 20_000;
            let ts =
                start + TimeDelta::microseconds(i as i64 * step_us + (r >> 40) as i64 % step_us);
            let received = ts + TimeDelta::milliseconds(40);
            writeln!(
                out,
                "{},user-{user},{kind},{source},{},{},{{}},{},{i}",
                uuid::Uuid::from_u64_pair(r, i as u64),
                ts.to_rfc3339(),
                received.to_rfc3339(),
                i % 6,
            )
            .unwrap();
        }
        out.flush().unwrap();
    }
    assert!(psql.wait().unwrap().success(), "COPY failed");
    conn.batch_execute(
        "CREATE INDEX events_event_ts_idx ON events (event_ts);
         CREATE INDEX events_user_id_event_ts_idx ON events (user_id, event_ts);
         CREATE INDEX events_event_type_event_ts_idx ON events (event_type, event_ts);
         -- What the worker adds with each batch, in one statement here.
         INSERT INTO event_counts_minute (minute, event_type, source, count)
         SELECT date_trunc('minute', event_ts, 'UTC'), event_type, source, count(*) FROM events GROUP BY 1, 2, 3;
         INSERT INTO event_counts_5min (bucket, event_type, source, count)
         SELECT date_bin('5 minutes', event_ts, timestamptz '1970-01-01Z'), event_type, source, count(*) FROM events GROUP BY 1, 2, 3;
         INSERT INTO event_counts_hour (hour, event_type, source, count)
         SELECT date_trunc('hour', event_ts, 'UTC'), event_type, source, count(*) FROM events GROUP BY 1, 2, 3;
         INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
         SELECT gen_random_uuid(), event_id, user_id,
                (ARRAY['high_frequency_login', 'high_value_purchase', 'unusual_time_activity'])[1 + kafka_offset % 3],
                (ARRAY['medium', 'high', 'low'])[1 + kafka_offset % 3], 'seeded', event_ts, '{}'
         FROM events WHERE kafka_offset % 200 = 0;
         -- The users and the lag histogram, as the worker keeps them.
         INSERT INTO users (user_id, first_seen, last_hour)
         SELECT user_id, min(event_ts), date_trunc('hour', max(event_ts), 'UTC') FROM events GROUP BY 1;
         INSERT INTO ingest_lag_hour (hour, bucket, count)
         SELECT date_trunc('hour', event_ts, 'UTC'),
                ceil(4 * log(greatest(extract(epoch FROM received_at - event_ts)::float8 * 1000 + 5, 1)) / log(2.0::float8))::smallint,
                count(*)
         FROM events GROUP BY 1, 2;",
    )
    .await
    .unwrap();
    // One statement each: VACUUM cannot run in the implicit transaction of
    // a multi-statement query.
    for table in [
        "events",
        "event_counts_minute",
        "event_counts_5min",
        "event_counts_hour",
        "anomalies",
        "users",
        "ingest_lag_hour",
    ] {
        conn.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap();
    }
}

struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        max: *samples.last().unwrap(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run() {
    let n = env_number("BENCH_EVENTS", 10_000_000);
    let requests = env_number("BENCH_REQUESTS", 300);
    let span = TimeDelta::days(7);

    println!("analytics benchmark: {n} events over 7 days, {requests} requests per query");
    // BENCH_KEEP=1 keeps the seeded database for the next run (and reuses
    // it, its week ending where it ended); by default it is dropped.
    let keep = std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1");
    let (scratch, url) = if keep {
        let url = format!("{SERVER}/eventpipe_bench_analytics_{n}");
        eventpipe_store::create_database_if_missing(&url)
            .await
            .unwrap();
        eventpipe_store::migrate(&url).await.unwrap();
        (None, url)
    } else {
        let db = ScratchDatabase::create(SERVER, "eventpipe_bench_analytics")
            .await
            .unwrap();
        let url = db.url.clone();
        (Some(db), url)
    };
    let kept_until = last_event(&url).await;
    let now = kept_until.unwrap_or_else(Utc::now);
    let start = now - span;
    if kept_until.is_none() {
        let seeding = Instant::now();
        seed(&url, n, start, span).await;
        println!(
            "  seeded with COPY, indexes and rollups in {:.0} s",
            seeding.elapsed().as_secs_f64()
        );
    } else {
        println!("  reusing {url} (BENCH_KEEP=1)");
    }

    let kafka = EmbeddedKafka::start(1).unwrap();
    for (topic, partitions) in [("events", 6), ("events.dlq", 1), ("anomalies", 3)] {
        kafka.create_topic(topic, partitions).unwrap();
    }
    let vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers()),
        ("DATABASE_URL", url.clone()),
    ]);
    let config =
        eventpipe_worker::config::WorkerConfig::from_lookup(|name| vars.get(name).cloned())
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(eventpipe_worker::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    while http.get(format!("{base}/health")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ranges end "now" at millisecond precision, as a dashboard's do, so
    // every query also counts its partial-minute edges from the events.
    let ms_of = |t: DateTime<Utc>| t.timestamp_millis();
    let day = format!("from={}&to={}", ms_of(now - TimeDelta::days(1)), ms_of(now));
    let week = format!("from={}&to={}", ms_of(start), ms_of(now));
    let queries = vec![
        ("total, last 24 h", format!("counts/total?{day}")),
        ("total, 7 days", format!("counts/total?{week}")),
        (
            "total, 7 days, type=login,purchase",
            format!("counts/total?{week}&type=login,purchase"),
        ),
        (
            "timeseries, 24 h at 1m (1440 buckets)",
            format!("counts/timeseries?{day}&interval=1m"),
        ),
        (
            "timeseries, 24 h at 5m by type",
            format!("counts/timeseries?{day}&interval=5m&group_by=type"),
        ),
        (
            "timeseries, 7 days at 1h by type",
            format!("counts/timeseries?{week}&interval=1h&group_by=type"),
        ),
        (
            "timeseries, 7 days, automatic (30m)",
            format!("counts/timeseries?{week}"),
        ),
        (
            "breakdown, 7 days by type",
            format!("counts/breakdown?{week}&by=type"),
        ),
        ("anomaly counts, 7 days", format!("anomalies/counts?{week}")),
    ];
    let queries: Vec<(&str, String)> = queries
        .into_iter()
        .map(|(name, path)| (name, format!("analytics/{path}")))
        .chain(read_queries(&http, &base).await)
        .collect();
    println!();
    println!(
        "  {:<40} {:>9} {:>9} {:>9}",
        "GET /api/v1/…", "p50 ms", "p99 ms", "max ms"
    );
    let mut report = Vec::new();
    for (name, path) in &queries {
        let url = format!("{base}/api/v1/{path}");
        for _ in 0..20 {
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            response.bytes().await.unwrap();
        }
        let mut samples = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            samples.push(started.elapsed());
        }
        let f = figures(samples);
        println!(
            "  {name:<40} {:>9.2} {:>9.2} {:>9.2}",
            ms(f.p50),
            ms(f.p99),
            ms(f.max)
        );
        report.push(serde_json::json!({"query": name, "p50_ms": ms(f.p50), "p99_ms": ms(f.p99), "max_ms": ms(f.max)}));
    }

    // The same 7-day total without the rollups: count(*) over the events.
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let naive = format!(
        "SELECT count(*) FROM events WHERE event_ts >= '{}' AND event_ts < '{}'",
        start.to_rfc3339(),
        now.to_rfc3339()
    );
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        sql_query(&naive).execute(&mut conn).await.unwrap();
        samples.push(started.elapsed());
    }
    let f = figures(samples);
    println!(
        "  {:<40} {:>9.2} {:>9.2} {:>9.2}   (SQL, no HTTP, 5 runs)",
        "count(*) over events, 7 days",
        ms(f.p50),
        ms(f.p99),
        ms(f.max)
    );
    report.push(serde_json::json!({"query": "count(*) over events, 7 days", "p50_ms": ms(f.p50), "p99_ms": ms(f.p99)}));
    let worst = |prefix: &[&str]| {
        report[..queries.len()]
            .iter()
            .filter(|r| {
                prefix
                    .iter()
                    .any(|p| r["query"].as_str().unwrap().starts_with(p))
            })
            .map(|r| r["p99_ms"].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    println!();
    println!(
        "  worst p99 of the totals and time series {:.2} ms, of the read API {:.2} ms (target < 20 ms)",
        worst(&["total", "timeseries"]),
        worst(&["events", "one event", "a user", "summary"])
    );
    let _ = std::fs::create_dir_all("../target/bench");
    let _ = std::fs::write(
        "../target/bench/analytics.json",
        serde_json::to_string_pretty(
            &serde_json::json!({"events": n, "requests": requests, "queries": report}),
        )
        .unwrap(),
    );
    let _ = stop.send(());
    let _ = server.await;
    drop(scratch);
}

/// The read API's requests: the first page of events, the 100th reached
/// by cursor, a filtered page, one event, a user's anomalies and profile,
/// and the 24-hour summary. The cursor and the ids come from the data.
async fn read_queries(http: &reqwest::Client, base: &str) -> Vec<(&'static str, String)> {
    let page = async |path: &str| -> serde_json::Value {
        let response = http
            .get(format!("{base}/api/v1/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    };
    let first = page("events?limit=100").await;
    let event_id = first["data"][0]["event_id"].as_str().unwrap().to_owned();
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    for _ in 2..100 {
        let next = page(&format!("events?limit=100&cursor={cursor}")).await;
        cursor = next["next_cursor"].as_str().unwrap().to_owned();
    }
    let user = "user-4242";
    vec![
        ("events, first page (100)", "events?limit=100".to_owned()),
        (
            "events, 100th page by cursor",
            format!("events?limit=100&cursor={cursor}"),
        ),
        (
            "events, user_id + type",
            format!("events?user_id={user}&type=login,purchase"),
        ),
        ("one event by id", format!("events/{event_id}")),
        ("a user's anomalies", format!("users/{user}/anomalies")),
        ("a user's profile (24 h)", format!("users/{user}")),
        ("summary, 24 h", "summary?hours=24".to_owned()),
    ]
}

/// Just after the newest event, when the database holds any.
async fn last_event(url: &str) -> Option<DateTime<Utc>> {
    #[derive(diesel::QueryableByName)]
    struct Last {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        at: Option<DateTime<Utc>>,
    }
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<Last> = sql_query("SELECT max(event_ts) AS at FROM events")
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter()
        .next()
        .and_then(|r| r.at)
        .map(|t| t + TimeDelta::milliseconds(1))
}
