//! Workers joining and leaving the group mid-stream move partitions
//! between them; every accepted event still ends up stored exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_mid_stream_lose_and_double_nothing() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    // Short sessions so a departed member's partitions move on quickly.
    let group = [
        (
            "KAFKA_CONFIG",
            "session.timeout.ms=6000;heartbeat.interval.ms=500",
        ),
        ("WORKER_BATCH_SIZE", "300"),
    ];
    let first = start_worker(&kafka, &db, &group).await;

    let mut accepted = 0;
    let mut round = 0;
    let mut post_round = async |api: &Running| {
        round += 1;
        let batch: Vec<_> = (0..100)
            .map(|i| json!({"user_id": format!("u{}", i % 29), "type": "click", "payload": {"round": round}}))
            .collect();
        post_events(api, &json!(batch)).await.len() as i64
    };
    for _ in 0..10 {
        accepted += post_round(&api).await;
    }
    // A second worker joins: the group rebalances while events flow.
    let second = start_worker(&kafka, &db, &group).await;
    for _ in 0..10 {
        accepted += post_round(&api).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first leaves (graceful): its partitions move to the second.
    first.stop().await.unwrap();
    for _ in 0..10 {
        accepted += post_round(&api).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.wait_for_events(accepted, Duration::from_secs(60)).await;
    assert_eq!(
        db.count("SELECT count(DISTINCT event_id) AS n FROM events")
            .await,
        accepted
    );
    // Every stored batch was committed, whichever worker stored it: the
    // group's offsets cover every message.
    second.stop().await.unwrap();
    assert_eq!(committed(&kafka), accepted);
    api.stop().await.unwrap();
}
