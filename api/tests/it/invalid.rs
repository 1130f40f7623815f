//! `API_INVALID_TOPIC`: each rejected event is kept, with its errors, on a
//! topic of its own; the client's answer is the same as without it; the
//! queue is bounded (what does not fit is dropped and counted); the API
//! key itself never appears.

use crate::support::*;
use serde_json::json;

const INVALID: &str = "events.invalid";
/// A key whose SHA-256 is configured below.
const KEY: &str = "secret-key-for-the-invalid-topic-test";

fn digest(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_are_kept_with_their_errors_and_never_the_key() {
    let api = TestApi::start_with(&[
        ("API_INVALID_TOPIC", INVALID),
        ("API_KEY_SHA256", &digest(KEY)),
    ])
    .await;
    let body = json!([
        event("u1", "login"),
        {"user_id": "u2", "type": "purchase", "payload": {"amount": -5, "currency": "USD"}},
        {"user_id": "", "type": "click", "payload": {}},
    ]);
    let response = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-request-id", "invalid-topic-test")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);

    // The two invalid events, not the valid one; nothing on the events topic.
    let kept = api.read_values(INVALID, 2);
    assert_eq!(kept[0]["index"], 1);
    assert_eq!(kept[0]["event"], body[1]);
    assert_eq!(kept[0]["errors"][0]["pointer"], "/payload/amount");
    assert_eq!(
        kept[0]["problem"]["type"],
        "urn:eventpipe:problem:invalid-events"
    );
    assert_eq!(kept[0]["problem"]["status"], 422);
    assert_eq!(kept[0]["problem"]["detail"], problem["detail"]);
    assert_eq!(kept[0]["request_id"], "invalid-topic-test");
    assert!(kept[0]["received_at"].is_string());
    assert_eq!(kept[0]["key_sha256_prefix"], digest(KEY)[..16]);
    assert_eq!(kept[1]["index"], 2);
    assert_eq!(kept[1]["errors"][0]["pointer"], "/user_id");
    for message in &kept {
        assert!(
            !message.to_string().contains(KEY),
            "the key leaked: {message}"
        );
    }
    assert_eq!(api.topic_message_count(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(api.held(INVALID), 2);
    let metrics = api.metrics_text().await;
    assert!(
        metrics.contains("eventpipe_api_invalid_events_kept_total 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_touching_the_answer() {
    let api = TestApi::start_with(&[
        ("API_INVALID_TOPIC", INVALID),
        ("API_INVALID_QUEUE_MAX_MESSAGES", "2"),
        ("KAFKA_LINGER_MS", "200"),
    ])
    .await;
    let bad =
        json!({"user_id": "u", "type": "purchase", "payload": {"amount": -1, "currency": "USD"}});
    let body = serde_json::Value::Array(vec![bad; 10]);
    let response = api.post_json(&body).await;
    assert_eq!(response.status(), 422);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = api.metrics_text().await;
        let value = |series: &str| sample(&metrics, series).unwrap_or(0.0) as u64;
        let kept = value("eventpipe_api_invalid_events_kept_total ");
        let dropped = value("eventpipe_api_invalid_events_dropped_total{reason=\"queue_full\"} ");
        if kept + dropped == 10 {
            assert_eq!(kept, 2, "the queue holds two");
            assert_eq!(dropped, 8);
            assert_eq!(api.held(INVALID), 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kept {kept}, dropped {dropped}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Without the topic the answer is the same.
    let plain = TestApi::start().await;
    let without = plain.post_json(&body).await;
    assert_eq!(without.status(), 422);
    let (a, b): (serde_json::Value, serde_json::Value) = (
        api.post_json(&body).await.json().await.unwrap(),
        without.json().await.unwrap(),
    );
    assert_eq!(a, b);
}
