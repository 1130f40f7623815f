//! Workers joining and leaving the group mid-stream move partitions
//! between them; every accepted event still ends up stored exactly once.

use std::time::Duration;

use crate::support::*;

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

    let mut stream = EventStream::new(&api, 29);
    for _ in 0..10 {
        stream.post_round().await;
    }
    // A second worker joins: the group rebalances while events flow.
    let second = start_worker(&kafka, &db, &group).await;
    for _ in 0..10 {
        stream.post_round().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first leaves (graceful): its partitions move to the second.
    first.stop().await.unwrap();
    for _ in 0..10 {
        stream.post_round().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.assert_each_stored_once(stream.accepted, Duration::from_secs(60))
        .await;
    // Every stored batch was committed, whichever worker stored it: the
    // group's offsets cover every message.
    second.stop().await.unwrap();
    assert_eq!(committed(&kafka), stream.accepted);
    api.stop().await.unwrap();
}
