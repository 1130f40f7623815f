//! Accepted events reach the topic exactly as promised: one message per
//! event, keyed by user id, the normalized value, the headers, at the
//! partition and offset the receipt names; rejected requests produce nothing.

use std::io::Write;

use crate::support::{TestApi, event};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_event_is_on_the_topic_as_the_receipt_says() {
    let api = TestApi::start().await;
    let sent = json!({
        "event_id": "6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162",
        "user_id": "user-42",
        "type": "login",
        "source": "web",
        "timestamp": 1700000000123_i64,
        "payload": {"success": false, "location": "DE"}
    });
    let response = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-abc-123")
        .body(sent.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 1);
    let result = &receipt["results"][0];
    assert_eq!(result["index"], 0);
    assert_eq!(result["event_id"], "6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162");
    assert_eq!(result["status"], "accepted");

    let messages = api.read_topic(1);
    let m = &messages[0];
    assert_eq!(m.key, "user-42");
    assert_eq!(json!(m.partition), result["partition"]);
    assert_eq!(json!(m.offset), result["offset"]);
    assert_eq!(m.headers["eventpipe-schema-version"], "1");
    assert_eq!(m.headers["eventpipe-request-id"], "req-abc-123");
    assert_eq!(m.headers["content-type"], "application/json");
    let v = &m.value;
    assert_eq!(v["event_id"], "6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162");
    assert_eq!(v["user_id"], "user-42");
    assert_eq!(v["type"], "login");
    assert_eq!(v["source"], "web");
    assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["timestamp_raw"], 1700000000123_i64);
    assert_eq!(v["payload"], json!({"success": false, "location": "DE"}));
    assert!(v["received_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(api.topic_message_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lands_once_per_event_keyed_and_in_order_per_user() {
    let api = TestApi::start().await;
    let batch: Vec<Value> = (0..100)
        .map(
            |i| json!({"user_id": format!("user-{}", i % 7), "type": "click", "payload": {"n": i}}),
        )
        .collect();
    let response = api.post_json(&Value::Array(batch)).await;
    assert_eq!(response.status(), 202);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 100);
    let results = receipt["results"].as_array().unwrap();
    let ids: std::collections::HashSet<&str> = results
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 100, "assigned event ids are distinct");
    for r in results {
        let id = uuid::Uuid::parse_str(r["event_id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
    }

    let mut messages = api.read_topic(100);
    assert_eq!(api.topic_message_count(), 100);
    messages.sort_by_key(|m| (m.partition, m.offset));
    let mut per_user: std::collections::HashMap<String, (i32, Vec<i64>)> = Default::default();
    for m in &messages {
        assert_eq!(m.key, m.value["user_id"].as_str().unwrap());
        let entry = per_user
            .entry(m.key.clone())
            .or_insert((m.partition, Vec::new()));
        assert_eq!(entry.0, m.partition, "one user, one partition");
        entry.1.push(m.value["payload"]["n"].as_i64().unwrap());
    }
    for (user, (_, ns)) in per_user {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "{user}: {ns:?} out of order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_ndjson_is_accepted() {
    let api = TestApi::start().await;
    let ndjson = "{\"user_id\":\"a\",\"type\":\"click\"}\n\n{\"user_id\":\"b\",\"type\":\"purchase\",\"payload\":{\"amount\":5,\"currency\":\"EUR\"}}\n";
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(ndjson.as_bytes()).unwrap();
    let response = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 2);
    let mut users: Vec<String> = api.read_topic(2).into_iter().map(|m| m.key).collect();
    users.sort();
    assert_eq!(users, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_validates_without_producing() {
    let api = TestApi::start().await;
    let response = api
        .http
        .post(api.url("/events?dry_run=true"))
        .header("content-type", "application/json")
        .body(json!([event("u", "click"), event("v", "login")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 0);
    assert_eq!(receipt["dry_run"], true);
    assert_eq!(receipt["results"][1]["status"], "valid");
    assert!(receipt["results"][1].get("partition").is_none());

    let invalid = api
        .http
        .post(api.url("/events?dry_run=true"))
        .header("content-type", "application/json")
        .body(json!({"user_id": "u"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    assert_eq!(api.topic_message_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_produce_nothing() {
    let api = TestApi::start_with(&[("API_MAX_BATCH_EVENTS", "3")]).await;
    let bad: Vec<(String, &str, u16)> = vec![
        (
            json!([event("u", "click"), {"user_id": "u"}]).to_string(),
            "application/json",
            422,
        ),
        ("[{\"user_id\":\"u\",".to_owned(), "application/json", 400),
        (
            json!([
                event("u", "a"),
                event("u", "b"),
                event("u", "c"),
                event("u", "d")
            ])
            .to_string(),
            "application/json",
            413,
        ),
        (json!(event("u", "click")).to_string(), "text/plain", 415),
    ];
    for (body, content_type, status) in bad {
        let r = api.post(body.clone(), content_type).await;
        assert_eq!(r.status(), status, "{body}");
    }
    assert_eq!(api.topic_message_count(), 0);
    assert_eq!(api.post_json(&event("u", "click")).await.status(), 202);
    assert_eq!(api.topic_message_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let api = TestApi::start().await;
    api.post_json(&json!([event("u", "click"), event("v", "click")]))
        .await;
    api.post_json(&json!([event("u", "click"), {"type": "x"}]))
        .await;
    api.post_json(&json!([event("w", "login"), event("w", "my.own_type")]))
        .await;
    let expected = [
        "eventpipe_api_events_received_total 6",
        "eventpipe_api_events_accepted_total 4",
        "eventpipe_api_events_accepted_by_type_total{type=\"click\"} 2",
        "eventpipe_api_events_accepted_by_type_total{type=\"login\"} 1",
        "eventpipe_api_events_accepted_by_type_total{type=\"other\"} 1",
        "eventpipe_api_events_accepted_by_type_total{type=\"purchase\"} 0",
        "eventpipe_api_events_rejected_total{reason=\"invalid-events\"} 2",
        "eventpipe_api_http_requests_total{method=\"POST\",route=\"/events\",status=\"202\"} 2",
        "eventpipe_api_http_requests_total{method=\"POST\",route=\"/events\",status=\"422\"} 1",
        "eventpipe_api_kafka_produce_duration_seconds_count{outcome=\"ok\"} 2",
        // librdkafka counts a message in flight until its delivery report
        // has been handled, a moment after the 202: the gauge follows.
        "eventpipe_api_kafka_producer_queue_messages 0",
        "eventpipe_api_kafka_producer_queue_max_messages 200000",
        "eventpipe_api_kafka_ready 1",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = api.metrics_text().await;
        let missing: Vec<_> = expected
            .iter()
            .filter(|line| !text.lines().any(|l| l == **line))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
