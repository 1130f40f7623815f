//! The time partitions: any time is stored (in its day's partition or the
//! default one), an event is recognised again across a partition boundary
//! and after the partition holding it was made, and retention removes
//! whole expired partitions, one process at a time, leaving the rest and
//! the rollups whole.

use chrono::{DateTime, Duration as Days, Utc};
use diesel::sql_types::Text;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use eventpipe_store::partitions::{self, Layout, day_start};
use eventpipe_store::retention::{self, Policy};
use eventpipe_store::{DEFAULT_DEDUP_WINDOW, NewEvent, store_batch};
use eventpipe_worker::config::Maintenance;
use eventpipe_worker::maintenance::{self, Outcome};

use crate::support::*;

fn settings(events_days: Option<u32>, anomalies_days: Option<u32>) -> Maintenance {
    Maintenance {
        retention: Policy {
            events_days,
            anomalies_days,
            rollups_days: None,
        },
        layout: Layout {
            span_days: 1,
            lock_timeout: std::time::Duration::from_millis(200),
        },
        ahead_days: 2,
        interval: std::time::Duration::from_secs(3600),
        reader_grace: std::time::Duration::ZERO,
    }
}

/// Event `n` at `ts` for user `u<n % 7>`.
fn at_time(n: u128, ts: DateTime<Utc>) -> NewEvent {
    let mut e = event(
        n,
        &format!("u{}", n % 7),
        "click",
        "web",
        "2026-01-01T00:00:00Z",
    );
    e.event_ts = ts;
    e.received_at = ts;
    e
}

#[derive(QueryableByName)]
struct Home {
    #[diesel(sql_type = Text)]
    partition: String,
}

/// The partition holding event `n` (each copy, by time).
async fn homes(db: &TestDb, n: u128) -> Vec<String> {
    let mut conn = db.connect().await;
    let rows: Vec<Home> = sql_query(format!(
        "SELECT tableoid::regclass::text AS partition FROM events WHERE event_id = '{}' ORDER BY event_ts",
        uuid::Uuid::from_u128(n)
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.partition).collect()
}

async fn pass(db: &TestDb, settings: Maintenance) -> maintenance::Report {
    match maintenance::pass(&db.url, settings, Utc::now(), |_| {})
        .await
        .unwrap()
    {
        Outcome::Done(report) => report,
        Outcome::Skipped => panic!("the pass was skipped"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_time_is_stored_and_lands_in_its_day_s_partition() {
    let db = TestDb::create().await;
    pass(&db, settings(None, None)).await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    let now = Utc::now();
    let rows = [
        at_time(1, at("1990-06-01T12:00:00Z")),
        at_time(2, now + Days::minutes(4)),
        at_time(3, now),
        at_time(4, at("2199-12-31T23:59:59.999Z")),
        at_time(5, at("0001-01-01T00:00:00Z")),
    ];
    let stored = store_batch(&pool, &rows, DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    assert_eq!(stored.inserted, 5);
    let today = format!("events_{}", now.format("%Y%m%d"));
    assert_eq!(homes(&db, 1).await, ["events_default"]);
    assert_eq!(
        homes(&db, 2).await,
        [format!(
            "events_{}",
            (now + Days::minutes(4)).format("%Y%m%d")
        )]
    );
    assert_eq!(homes(&db, 3).await, [today]);
    assert_eq!(homes(&db, 4).await, ["events_default"]);
    assert_eq!(homes(&db, 5).await, ["events_default"]);
    db.assert_rollups_exact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_recognised_across_partition_boundaries_and_after_its_partition_is_made() {
    let db = TestDb::create().await;
    pass(&db, settings(None, None)).await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    let today = day_start(Utc::now());
    // A template made yesterday made yesterday's partition: not here.
    db.run_sql(&format!(
        "DROP TABLE IF EXISTS events_{}",
        (today - Days::days(1)).format("%Y%m%d")
    ))
    .await;
    let store = async |rows: &[NewEvent]| {
        store_batch(&pool, rows, DEFAULT_DEDUP_WINDOW)
            .await
            .unwrap()
            .inserted
    };

    // Yesterday's last millisecond: yesterday has no partition yet.
    let late = at_time(1, today - Days::milliseconds(1));
    assert_eq!(store(std::slice::from_ref(&late)).await, 1);
    assert_eq!(homes(&db, 1).await, ["events_default"]);
    // Re-sent, stamped again two milliseconds later: today's partition.
    let restamped = at_time(1, today + Days::milliseconds(1));
    assert_eq!(store(std::slice::from_ref(&restamped)).await, 0);

    // A pass keeping two days makes yesterday's partition, moving the row.
    let report = pass(&db, settings(Some(2), Some(2))).await;
    let yesterday = format!("events_{}", (today - Days::days(1)).format("%Y%m%d"));
    assert!(
        report.created.iter().any(|(_, p)| *p == yesterday),
        "{report:?}"
    );
    assert_eq!(homes(&db, 1).await, [yesterday]);
    // The same message again, and the re-stamped copy again.
    assert_eq!(store(&[late.clone(), restamped.clone()]).await, 0);

    // Tomorrow's partition was made today; an event of its first second,
    // redelivered, and re-sent stamped in today's last second.
    let tomorrow = today + Days::days(1);
    let early = at_time(2, tomorrow + Days::seconds(1));
    assert_eq!(store(std::slice::from_ref(&early)).await, 1);
    assert_eq!(
        homes(&db, 2).await,
        [format!("events_{}", tomorrow.format("%Y%m%d"))]
    );
    assert_eq!(
        store(&[early.clone(), at_time(2, tomorrow - Days::seconds(1))]).await,
        0
    );

    // The same day, hours apart: one partition, one row.
    let morning = at_time(4, today + Days::hours(1));
    assert_eq!(store(std::slice::from_ref(&morning)).await, 1);
    assert_eq!(store(&[at_time(4, today + Days::hours(20))]).await, 0);

    // One batch holding both copies stores the first.
    let both = [
        at_time(3, today - Days::minutes(10)),
        at_time(3, today + Days::minutes(10)),
    ];
    assert_eq!(store(&both).await, 1);

    // Past the window the id is not looked for: a copy stamped two days
    // later is a second row (the documented limit).
    let far = at_time(1, today - Days::milliseconds(1) + Days::days(2));
    assert_eq!(store(std::slice::from_ref(&far)).await, 1);
    assert_eq!(homes(&db, 1).await.len(), 2);
    db.assert_rollups_exact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_days_kept_thirty_drops_the_old_partitions_and_keeps_the_rest() {
    let db = TestDb::create().await;
    // Partitions for 45 days back, as a worker keeping 45 days makes them.
    pass(&db, settings(Some(45), Some(45))).await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    let now = Utc::now();
    // An event every 3 hours for 40 days, plus one from 1990; anomalies for
    // every eighth.
    let rows: Vec<NewEvent> = (0..320u128)
        .map(|i| at_time(i + 1, now - Days::hours(3 * i as i64)))
        .chain([at_time(1000, at("1990-06-01T00:00:00Z"))])
        .collect();
    let stored = store_batch(&pool, &rows, DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    assert_eq!(stored.inserted, 321);
    db.run_sql(
        "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
         SELECT gen_random_uuid(), event_id, user_id, 'rule', 'low', 'seen', event_ts, '{}'
         FROM events WHERE kafka_offset % 8 = 0;
         INSERT INTO anomaly_outbox (anomaly_id) SELECT anomaly_id FROM anomalies",
    )
    .await;
    let anomalies = db.count("SELECT count(*) AS n FROM anomalies").await;

    let horizon = day_start(now - Days::days(30));
    let keep = settings(Some(30), Some(30));
    // The dry run lists what the pass then removes.
    let plan = maintenance::dry_run(&db.url, keep.retention).await.unwrap();
    let listed = maintenance::describe(keep.retention, &plan);
    let doomed: Vec<String> = {
        let mut conn = db.connect().await;
        partitions::list(&mut conn, "events")
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.to.is_some_and(|t| t <= horizon))
            .map(|p| p.table)
            .collect()
    };
    // Days 45 to 31 back (and any older day the template database had).
    assert!(doomed.len() >= 15, "{doomed:?}");
    for table in &doomed {
        assert!(
            listed.contains(&format!("drop partition {table} ")),
            "{listed}"
        );
    }
    assert!(
        listed.contains("delete 1 rows of events_default"),
        "{listed}"
    );

    let report = pass(&db, keep).await;
    let dropped: Vec<&String> = report
        .removed
        .iter()
        .filter(|r| r.table == "events")
        .filter_map(|r| r.partition.as_ref())
        .collect();
    assert_eq!(dropped.len(), doomed.len());
    let kept_rows = rows.iter().filter(|r| r.event_ts >= horizon).count() as i64;
    let removed_rows: i64 = report
        .removed
        .iter()
        .filter(|r| r.table == "events")
        .map(|r| r.rows)
        .sum();
    assert_eq!(removed_rows, 321 - kept_rows, "{report:?}");
    assert_eq!(db.events().await, kept_rows);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM events WHERE event_ts < '{}'",
            horizon.to_rfc3339()
        ))
        .await,
        0
    );
    // Anomalies of the same days went, their outbox entries with them.
    let kept_anomalies = db
        .count(&format!(
            "SELECT count(*) AS n FROM anomalies WHERE event_ts >= '{}'",
            horizon.to_rfc3339()
        ))
        .await;
    assert!(kept_anomalies > 0 && kept_anomalies < anomalies);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomalies").await,
        kept_anomalies
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomaly_outbox").await,
        kept_anomalies
    );
    // The rollups keep every event, the removed ones included.
    assert_eq!(
        db.count("SELECT sum(count)::bigint AS n FROM event_counts_hour")
            .await,
        321
    );
    // The horizon is recorded for readers.
    let mut conn = db.connect().await;
    let horizons = retention::horizons(&mut conn).await.unwrap();
    assert_eq!(
        horizons,
        [
            ("anomalies".to_owned(), horizon),
            ("events".to_owned(), horizon)
        ]
    );
    // A second pass finds nothing more.
    assert!(pass(&db, keep).await.removed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pass_at_a_time() {
    let db = TestDb::create().await;
    let mut holder = db.connect().await;
    assert!(retention::try_lock(&mut holder).await.unwrap());
    // Another worker's pass skips while the lock is held, and changes nothing.
    let before = {
        let mut conn = db.connect().await;
        partitions::list(&mut conn, "events").await.unwrap().len()
    };
    let outcome = maintenance::pass(&db.url, settings(Some(5), None), Utc::now(), |_| {})
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Skipped), "{outcome:?}");
    let mut conn = db.connect().await;
    assert_eq!(
        partitions::list(&mut conn, "events").await.unwrap().len(),
        before
    );
    retention::unlock(&mut holder).await.unwrap();

    // Two workers' passes at once, with something to remove: the first to
    // take the lock holds it through its reader grace; the other skips.
    pass(&db, settings(Some(10), None)).await;
    let mut slow = settings(Some(5), None);
    slow.reader_grace = std::time::Duration::from_secs(2);
    let removed = std::sync::Mutex::new(Vec::new());
    let run = async |delay: u64| {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        maintenance::pass(&db.url, slow, Utc::now(), |r| {
            removed.lock().unwrap().push(r.partition.clone())
        })
        .await
        .unwrap()
    };
    let (first, second) = tokio::join!(run(0), run(300));
    assert!(matches!(first, Outcome::Done(_)), "{first:?}");
    assert!(matches!(second, Outcome::Skipped), "{second:?}");
    let removed = removed.into_inner().unwrap();
    // Days 10 to 6 back (and any older day the template database had).
    assert!(removed.len() >= 5, "{removed:?}");
    let mut distinct = removed.clone();
    distinct.dedup();
    assert_eq!(distinct, removed);
}

fn rollups_too(events_days: u32, rollups_days: u32) -> Maintenance {
    let mut s = settings(Some(events_days), Some(events_days));
    s.retention.rollups_days = Some(rollups_days);
    s
}

async fn get(worker: &Running, path: &str) -> serde_json::Value {
    let response = reqwest::get(worker.url(path)).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// An analytics route over `[from, to)`, times in epoch ms.
fn over(route: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let sep = if route.contains('?') { '&' } else { '?' };
    format!(
        "/api/v1/analytics/{route}{sep}from={}&to={}",
        from.timestamp_millis(),
        to.timestamp_millis()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_over_removed_raw_events_come_from_the_rollups_and_say_so() {
    let db = TestDb::create().await;
    pass(&db, settings(Some(45), Some(45))).await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    let today = day_start(Utc::now());
    // An event every 10 minutes, 30 s past the minute, for 40 days back.
    let base = today - Days::hours(1) + Days::seconds(30);
    let rows: Vec<NewEvent> = (0..40 * 144u128)
        .map(|i| at_time(i + 1, base - Days::minutes(10 * i as i64)))
        .collect();
    store_batch(&pool, &rows, DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    db.run_sql(
        "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
         SELECT gen_random_uuid(), event_id, user_id, 'rule', 'low', 'seen', event_ts, '{}'
         FROM events WHERE kafka_offset % 4 = 0",
    )
    .await;
    let between = |from: DateTime<Utc>, to: DateTime<Utc>| {
        rows.iter()
            .filter(|r| r.event_ts >= from && r.event_ts < to)
            .count() as i64
    };
    // Raw events and anomalies kept 30 days, counts 35.
    pass(&db, rollups_too(30, 35)).await;
    let (raw_from, counts_from) = (
        day_start(Utc::now() - Days::days(30)),
        day_start(Utc::now() - Days::days(35)),
    );
    assert_eq!(db.events().await, between(raw_from, today));

    let kafka = kafka();
    let worker = start_worker(&kafka, &db, &[]).await;
    wait_ready(&worker).await;

    // Inside what is kept: exact, nothing said.
    let (from, to) = (raw_from + Days::seconds(45), today);
    let kept = get(&worker, &over("counts/total", from, to)).await;
    assert_eq!(kept["count"], between(from, to), "{kept}");
    assert!(kept.get("counted_from").is_none() && kept.get("complete_from").is_none());

    // Starting three days before the raw horizon, 15 s after an event:
    // the first minute counts whole, from the minute rollup, and says so.
    let from = raw_from - Days::days(3) - Days::hours(1) + Days::seconds(45);
    let old = get(&worker, &over("counts/total", from, to)).await;
    let minute = from - Days::seconds(45);
    assert_eq!(old["count"], between(minute, to), "{old}");
    assert_eq!(between(minute, to), between(from, to) + 1);
    assert_eq!(
        old["counted_from"],
        eventpipe_contract::rfc3339::format(&minute)
    );
    assert!(old.get("complete_from").is_none(), "{old}");
    let series = get(&worker, &over("counts/timeseries?interval=1d", from, to)).await;
    let summed: i64 = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert_eq!(summed, between(minute, to), "{series}");
    assert_eq!(series["counted_from"], old["counted_from"]);

    // Starting before the counts' horizon: what is before it is missing, said.
    let from = counts_from - Days::days(2);
    let gone = get(&worker, &over("counts/total", from, to)).await;
    assert_eq!(gone["count"], between(counts_from, to), "{gone}");
    assert_eq!(
        gone["complete_from"],
        eventpipe_contract::rfc3339::format(&counts_from)
    );
    let anomalies = get(&worker, &over("anomalies/counts", from, to)).await;
    assert_eq!(
        anomalies["complete_from"],
        eventpipe_contract::rfc3339::format(&raw_from)
    );

    // A summary of 1,000 hours: events from its first whole hour, from the
    // counts kept; anomalies from those kept.
    let summary = get(&worker, "/api/v1/summary?hours=1000").await;
    let events = &summary["events"];
    assert_eq!(
        events["complete_from"],
        eventpipe_contract::rfc3339::format(&counts_from),
        "{summary}"
    );
    assert!(
        events["counted_from"]
            .as_str()
            .unwrap()
            .ends_with(":00:00Z")
    );
    assert_eq!(events["total"], between(counts_from, Utc::now()));
    assert_eq!(
        summary["anomalies"]["complete_from"],
        eventpipe_contract::rfc3339::format(&raw_from)
    );
    worker.stop().await.unwrap();
}
