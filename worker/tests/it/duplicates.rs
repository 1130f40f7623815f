//! Redelivery never makes a second row: the same event_id within a batch,
//! across batches, and a whole-topic replay by a fresh consumer group; nor
//! a second count in the per-minute rollups.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_id_is_stored_once() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[]).await;

    let same = "6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162";
    let repeated = json!({"event_id": same, "user_id": "u", "type": "click"});
    // Twice in one batch, with two new events.
    post_events(
        &api,
        &json!([repeated, repeated, {"user_id": "u", "type": "a"}, {"user_id": "v", "type": "b"}]),
    )
    .await;
    // Again in later requests, as a client retry would.
    post_events(&api, &json!([repeated])).await;
    post_events(&api, &repeated).await;
    let fresh: Vec<_> = (0..50)
        .map(|i| json!({"user_id": format!("w{i}"), "type": "c"}))
        .collect();
    post_events(&api, &json!(fresh)).await;
    // 56 messages on the topic, 53 distinct events.
    db.wait_for_events(53, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Duplicates are counted once their batch is written, after it was read.
    while metric(&worker, "eventpipe_worker_events_duplicate_total").await < 3.0 {
        assert!(
            Instant::now() < deadline,
            "the worker did not count the 3 duplicates"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM events WHERE event_id = '{same}'"
        ))
        .await,
        1
    );
    assert_eq!(
        metric(&worker, "eventpipe_worker_events_duplicate_total").await,
        3.0
    );

    // A new consumer group reads the topic from offset 0: every message is
    // redelivered, none makes a row.
    let replay = start_worker(&kafka, &db, &[("KAFKA_GROUP_ID", "replay-from-zero")]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&replay, "eventpipe_worker_events_duplicate_total").await < 56.0 {
        assert!(
            Instant::now() < deadline,
            "the replay did not count all 56 messages as duplicates"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(db.events().await, 53);
    // Redelivery added nothing to the rollups either.
    db.assert_rollups_exact().await;
    assert_eq!(
        metric(&replay, "eventpipe_worker_events_stored_total").await,
        0.0
    );
    assert_eq!(
        metric(&replay, "eventpipe_worker_events_duplicate_total").await,
        56.0
    );
    replay.stop().await.unwrap();
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
}

/// The same ids sent under two users whose events go to different write
/// lanes (a client re-sending ids with other content): both lanes insert
/// them at once, in opposite batch orders. Each id is stored once and no
/// write fails: the lanes insert in id order, so they wait for each other
/// without a deadlock (unordered, PostgreSQL aborted one of them as
/// deadlocked and the batch was retried after a pause).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_ids_in_two_lanes_at_once_are_stored_once_without_a_deadlock() {
    use eventpipe_worker::pipeline::lane_of;

    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[("WORKER_WRITE_LANES", "2")]).await;
    let first = "ann";
    let second = (0..)
        .map(|i| format!("bob{i}"))
        .find(|u| lane_of(u, 2) != lane_of(first, 2))
        .unwrap();
    let mut distinct = 0;
    for _ in 0..10 {
        let ids: Vec<String> = (0..1000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        // Two requests (one may not repeat an id), read in one batch.
        let (ann, bob): (Vec<_>, Vec<_>) = (
            ids.iter()
                .map(|id| json!({"event_id": id, "user_id": first, "type": "click"}))
                .collect(),
            ids.iter()
                .rev()
                .map(|id| json!({"event_id": id, "user_id": second, "type": "click"}))
                .collect(),
        );
        let (ann, bob) = (json!(ann), json!(bob));
        tokio::join!(post_events(&api, &ann), post_events(&api, &bob));
        distinct += ids.len() as i64;
    }
    db.wait_for_events(distinct, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&worker, "eventpipe_worker_events_duplicate_total").await < distinct as f64 {
        assert!(
            Instant::now() < deadline,
            "the duplicates were not all counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(db.events().await, distinct);
    assert_eq!(
        metric(&worker, "eventpipe_worker_db_write_failures_total").await,
        0.0,
        "a lane's write failed (deadlock?)"
    );
    db.assert_rollups_exact().await;
}
