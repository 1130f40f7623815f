//! Events the topic no longer holds when the worker gets to them (retention
//! deleted them while the worker was behind) cannot be stored, but they must
//! not vanish silently: the worker counts every skipped offset and logs it.
//! The embedded cluster keeps 5 MiB per partition, so a stopped worker and
//! 7 MiB of events for one user make the gap.

use std::time::Duration;

use crate::support::*;
use serde_json::json;

/// Posts `events` and returns the partition the receipt names.
async fn post(api: &Running, events: &serde_json::Value) -> i64 {
    let response = reqwest::Client::new()
        .post(api.url("/events"))
        .json(events)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let receipt: serde_json::Value = response.json().await.unwrap();
    receipt["results"][0]["partition"].as_i64().unwrap()
}

/// A payload lz4 cannot shrink: 60,000 pseudo-random hex digits.
fn incompressible(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..60_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_deleted_before_the_worker_read_them_are_counted_and_logged() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    // The mock cluster holds a rejoining group for the session timeout
    // minus a second even after the last member left; keep it short.
    let group = [(
        "KAFKA_CONFIG",
        "session.timeout.ms=3000;heartbeat.interval.ms=500",
    )];
    let first = start_worker(&kafka, &db, &group).await;
    let small: Vec<_> = (0..5)
        .map(|i| json!({"user_id": "retention-user", "type": "click", "payload": {"n": i}}))
        .collect();
    let partition = post(&api, &json!(small)).await;
    db.wait_for_events(5, Duration::from_secs(30)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while committed(&kafka) < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first 5 were never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.stop().await.unwrap();

    // 120 events of 60 kB for the same user while no worker reads:
    // the partition outgrows what the cluster keeps.
    let total_large = 120;
    for batch in 0..total_large / 20 {
        let events: Vec<_> = (0..20)
            .map(|i| {
                json!({"user_id": "retention-user", "type": "file_access",
                       "payload": {"blob": incompressible(batch * 20 + i + 1)}})
            })
            .collect();
        assert_eq!(post(&api, &json!(events)).await, partition);
    }

    let second = start_worker(&kafka, &db, &group).await;
    let series = format!(
        "eventpipe_worker_offsets_skipped_total{{partition=\"{partition}\",topic=\"events\"}}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let skipped = loop {
        let skipped = metric(&second, &series).await;
        if skipped > 0.0 {
            break skipped as i64;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no skipped offsets reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Every offset is either stored or counted as skipped.
    let accepted = 5 + total_large as i64;
    db.wait_for_events(accepted - skipped, Duration::from_secs(60))
        .await;
    assert!(
        skipped > 5,
        "only {skipped} skipped: the old small events alone?"
    );
    assert_eq!(db.events().await, accepted - skipped);
    second.stop().await.unwrap();
    api.stop().await.unwrap();
}
