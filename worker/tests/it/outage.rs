//! PostgreSQL unreachable during consumption: nothing is committed while it
//! is down, nothing is lost or doubled, and the worker resumes by itself.

use std::time::Duration;

use crate::support::*;
use serde_json::json;

fn batch(tag: &str, n: usize) -> serde_json::Value {
    json!(
        (0..n)
            .map(|i| json!({"user_id": format!("{tag}-{}", i % 9), "type": "click"}))
            .collect::<Vec<_>>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_loses_nothing_and_commits_nothing() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[]).await;

    post_events(&api, &batch("before", 100)).await;
    db.wait_for_events(100, Duration::from_secs(30)).await;
    let mut settled = committed(&kafka);
    for _ in 0..50 {
        if settled == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = committed(&kafka);
    }
    assert_eq!(settled, 100, "offsets of stored events are committed");

    // The outage: no new connections, existing ones cut.
    db.go_down().await;
    post_events(&api, &batch("during", 150)).await;
    post_events(&api, &batch("during2", 150)).await;
    // Wait until the worker has tried and failed to write, and readiness
    // says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let failures = metric(&worker, "eventpipe_worker_db_write_failures_total").await;
        let ready = reqwest::get(worker.url("/ready")).await.unwrap().status();
        if failures >= 2.0 && ready == 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failures {failures}, ready {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed(&kafka),
        100,
        "nothing is committed while the database is down"
    );
    db.come_back().await;
    db.wait_for_events(400, Duration::from_secs(30)).await;
    assert_eq!(
        db.count("SELECT count(DISTINCT event_id) AS n FROM events")
            .await,
        400
    );
    for _ in 0..50 {
        if committed(&kafka) == 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(committed(&kafka), 400);
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
}
