//! The delivery audit against the real pipeline (embedded Kafka, the API
//! with an API key required, the worker, PostgreSQL): a clean run audits 0
//! lost and 0 doubled, and the audit reports the losses, duplicates and
//! strays it is then given.

use std::time::Duration;

use clap::Parser;
use diesel::sql_query;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_load::config::Options;
use eventpipe_load::ledger::{REJECTED, SENT};
use eventpipe_load::{Exit, audit, metrics};
use eventpipe_store::ScratchDatabase;
use sha2::{Digest, Sha256};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const KEY: &str = "load-test-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_every_loss_duplicate_and_stray_it_is_given() {
    let _machine = crate::shared().await;
    let database = ScratchDatabase::create(SERVER, "eventpipe_load")
        .await
        .unwrap();
    let url = database.url.clone();
    // The API accepts only this key: the generator must send it.
    let digest = hex::encode(Sha256::digest(KEY));
    let pipeline = crate::local_run(&url, &[("API_KEY_SHA256", &digest)]).await;

    let config = Options::try_parse_from([
        "eventpipe-load",
        "--url",
        &format!("http://{}", pipeline.api),
        "--rate",
        "200",
        "--duration",
        "3s",
        "--batch-size",
        "1:1,20:1",
        "--invalid-fraction",
        "0.02",
        "--duplicate-fraction",
        "0.05",
        "--gzip",
        "--api-key",
        KEY,
        "--audit-database-url",
        &url,
        "--audit-drain",
        "60s",
        "--visibility-sample-every",
        "20ms",
        "--threshold",
        "events_lost: count==0",
        "--threshold",
        "events_duplicated: count==0",
        "--threshold",
        "checks: rate==1",
        "--no-progress",
    ])
    .unwrap()
    .resolve()
    .unwrap();
    let finished = eventpipe_load::run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(finished.exit, Exit::Passed);
    let clean = finished.audit.clone().unwrap();
    assert!(clean.accepted > 1000, "{clean:?}");
    assert_eq!(clean.stored, clean.accepted, "{clean:?}");
    assert_eq!(
        (clean.lost, clean.duplicated, clean.rejected_stored),
        (0, 0, 0)
    );
    let rejected = finished
        .snapshot
        .aggregate(metrics::EVENTS_REJECTED, "count")
        .unwrap();
    assert!(rejected > 0.0, "no invalid event was sent");
    let retried = finished
        .snapshot
        .aggregate(metrics::EVENTS_SENT, "count")
        .unwrap()
        - (clean.accepted as f64 + rejected);
    assert!(retried > 0.0, "no id was retried");
    assert!(
        finished
            .snapshot
            .aggregate(metrics::EVENT_VISIBILITY_LATENCY, "count")
            .is_some_and(|n| n > 0.0),
        "no visibility sample"
    );

    // Without the key every request is refused, and counted as failed.
    let keyless = Options::from_args([
        "--url",
        &format!("http://{}", pipeline.api),
        "--rate",
        "20",
        "--duration",
        "1s",
        "--no-progress",
    ])
    .unwrap()
    .resolve()
    .unwrap();
    let refused = eventpipe_load::run(keyless, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        refused.snapshot.aggregate(metrics::HTTP_REQ_FAILED, "rate"),
        Some(1.0)
    );
    assert_eq!(
        refused
            .snapshot
            .aggregate(metrics::EVENTS_ACCEPTED, "count"),
        Some(0.0)
    );

    pipeline.stop().await.unwrap();

    let mut db = AsyncPgConnection::establish(&url).await.unwrap();
    // This tampers with events alone; the anomaly tables' foreign keys on
    // events would stand in its way (CASCADE: and the view over them).
    sql_query("DROP TABLE anomaly_outbox, anomalies CASCADE")
        .execute(&mut db)
        .await
        .unwrap();
    // A loss: three accepted events vanish.
    sql_query("DELETE FROM events WHERE event_id IN (SELECT event_id FROM events ORDER BY event_id LIMIT 3)")
        .execute(&mut db)
        .await
        .unwrap();
    // A duplicate: a store that does not dedup writes one event twice
    // (here a copy two days later, in another partition).
    sql_query(
        "INSERT INTO events
         SELECT event_id, user_id, event_type, source, event_ts + interval '2 days', timestamp_raw,
                received_at, stored_at, payload, kafka_partition, kafka_offset
         FROM events ORDER BY event_id DESC LIMIT 1",
    )
    .execute(&mut db)
    .await
    .unwrap();
    // A stray: an event the API refused shows up stored.
    let refused = finished
        .ledger
        .blocks()
        .find_map(|(start, flags)| {
            flags
                .iter()
                .position(|f| *f == SENT | REJECTED)
                .map(|i| start + i as u64)
        })
        .unwrap();
    sql_query(
        "INSERT INTO events (event_id, user_id, event_type, source, event_ts, timestamp_raw, received_at, payload, kafka_partition, kafka_offset)
         SELECT $1, user_id, event_type, source, event_ts, timestamp_raw, received_at, payload, kafka_partition, kafka_offset
         FROM events ORDER BY event_id DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(finished.ids.uuid(refused))
    .execute(&mut db)
    .await
    .unwrap();

    let found = audit::audit(&mut db, &finished.ids, &finished.ledger, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(found.lost, 3, "{found:?}");
    assert_eq!(found.lost_examples.len(), 3);
    assert_eq!(found.duplicated, 1, "{found:?}");
    assert_eq!(found.rejected_stored, 1, "{found:?}");
}
