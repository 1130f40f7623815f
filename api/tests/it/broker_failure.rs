//! When Kafka cannot acknowledge, the API says 503 with Retry-After and
//! never 2xx; when Kafka returns, the API recovers by itself.

use std::time::{Duration, Instant};

use crate::support::{TestApi, event};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_means_503_then_recovery() {
    let api = TestApi::start_with(&[("KAFKA_MESSAGE_TIMEOUT_MS", "1500")]).await;
    assert_eq!(api.post_json(&event("before", "click")).await.status(), 202);

    api.kafka.all_down().unwrap();
    for i in 0..3 {
        let response = api
            .post_json(&json!([
                event(&format!("down-{i}"), "click"),
                event("x", "y")
            ]))
            .await;
        assert_eq!(response.status(), 503, "no 2xx while Kafka is down");
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "urn:eventpipe:problem:unavailable");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("did not acknowledge"),
            "{body}"
        );
    }
    // The probe notices too, so load balancers stop sending.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = api.http.get(api.url("/ready")).send().await.unwrap();
        if ready.status() == 503 {
            let body: Value = ready.json().await.unwrap();
            assert_eq!(body["kafka"], false);
            assert!(body["reason"].as_str().is_some(), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/ready never noticed the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    api.kafka.all_up().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.post_json(&event("after", "click")).await.status();
        if status == 202 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "API did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.wait_ready(Duration::from_secs(15)).await;
    let metrics = api.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("eventpipe_api_kafka_produce_errors_total{kind=\"timed_out\"}")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_is_503_at_once() {
    let api = TestApi::start_with(&[
        ("KAFKA_QUEUE_MAX_MESSAGES", "5"),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "3000"),
    ])
    .await;
    api.kafka.all_down().unwrap();
    let started = Instant::now();
    let batch: Vec<Value> = (0..10).map(|i| event(&format!("u{i}"), "click")).collect();
    let response = api.post_json(&Value::Array(batch)).await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "queue full must not wait for a timeout"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("queue is full"),
        "{body}"
    );
    api.kafka.all_up().unwrap();
}
