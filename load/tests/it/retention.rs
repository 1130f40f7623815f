//! Retention while the pipeline ingests at full speed loses nothing: old
//! partitions are dropped one after another during a load run, and the
//! delivery audit finds every accepted event stored once.

use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use eventpipe_load::config::Options;
use eventpipe_load::{Exit, metrics};
use eventpipe_store::ScratchDatabase;
use eventpipe_store::partitions::{self, Layout, day_start};
use eventpipe_store::retention::Policy;
use eventpipe_worker::config::Maintenance;
use eventpipe_worker::maintenance::{self, Outcome};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn keeping(days: u32) -> Maintenance {
    Maintenance {
        retention: Policy {
            events_days: Some(days),
            anomalies_days: Some(days),
            rollups_days: None,
        },
        layout: Layout {
            span_days: 1,
            lock_timeout: Duration::from_millis(200),
        },
        ahead_days: 2,
        interval: Duration::from_secs(3600),
        reader_grace: Duration::ZERO,
    }
}

/// Runs a pass keeping `days`, again while another process holds the lock.
async fn pass(url: &str, days: u32) -> maintenance::Report {
    loop {
        match maintenance::pass(url, keeping(days), Utc::now(), |_| {})
            .await
            .unwrap()
        {
            Outcome::Done(report) => return report,
            Outcome::Skipped => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_during_a_load_run_loses_nothing() {
    let _machine = crate::shared().await;
    let database = ScratchDatabase::create(SERVER, "eventpipe_load")
        .await
        .unwrap();
    let url = database.url.clone();
    // 45 days of partitions, the old days holding an event an hour.
    pass(&url, 45).await;
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    conn.batch_execute(
        "INSERT INTO events (event_id, user_id, event_type, source, event_ts, received_at, payload, kafka_partition, kafka_offset)
         SELECT gen_random_uuid(), 'old-' || (i % 50), 'click', 'api', now() - interval '31 days' - i * interval '1 hour',
                now(), '{}', 0, i
         FROM generate_series(0, 14 * 24) AS i",
    )
    .await
    .unwrap();

    let pipeline = crate::local_run(&url, &[]).await;
    let config = Options::try_parse_from([
        "eventpipe-load",
        "--url",
        &format!("http://{}", pipeline.api),
        "--rate",
        "400",
        "--duration",
        "4s",
        "--batch-size",
        "1:1,20:1",
        "--duplicate-fraction",
        "0.05",
        "--audit-database-url",
        &url,
        "--audit-drain",
        "60s",
        "--threshold",
        "events_lost: count==0",
        "--threshold",
        "events_duplicated: count==0",
        "--no-progress",
    ])
    .unwrap()
    .resolve()
    .unwrap();
    // Each pass keeps a day less: a partition is dropped every ~250 ms
    // while the run stores.
    let retention_url = url.clone();
    let retention = tokio::spawn(async move {
        let mut dropped = 0;
        for days in (31..45).rev() {
            let report = pass(&retention_url, days).await;
            dropped += report
                .removed
                .iter()
                .filter(|r| r.table == "events" && r.partition.is_some())
                .count();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        dropped
    });
    let finished = eventpipe_load::run(config, std::future::pending())
        .await
        .unwrap();
    let dropped = retention.await.unwrap();
    assert!(dropped >= 13, "only {dropped} partitions dropped");
    assert_eq!(finished.exit, Exit::Passed);
    let audit = finished.audit.clone().unwrap();
    assert!(audit.accepted > 500, "{audit:?}");
    assert_eq!((audit.lost, audit.duplicated), (0, 0), "{audit:?}");
    assert!(
        finished
            .snapshot
            .aggregate(metrics::EVENTS_SENT, "count")
            .unwrap()
            > audit.accepted as f64,
        "no id was retried"
    );
    // What the passes were to remove is gone.
    let horizon = day_start(Utc::now() - chrono::Duration::days(31));
    let left = partitions::list(&mut conn, "events").await.unwrap();
    assert!(
        left.iter().all(|p| p.to.is_none_or(|t| t > horizon)),
        "{left:?}"
    );
    pipeline.stop().await.unwrap();
}
