//! Overload is answered, not queued: with `API_MAX_IN_FLIGHT_EVENTS`
//! events already waiting for Kafka, a request gets 503 + `Retry-After` at
//! once and nothing of it is produced; only what a client retries is.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

fn batch(n: usize) -> (Vec<String>, serde_json::Value) {
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let events = ids
        .iter()
        .map(|id| json!({"event_id": id, "user_id": "u", "type": "click", "payload": {"element": "b"}}))
        .collect();
    (ids, serde_json::Value::Array(events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_limit_get_503_at_once_and_produce_nothing() {
    // A long linger keeps admitted events in flight for a second.
    let api = TestApi::start_with(&[
        ("API_MAX_IN_FLIGHT_EVENTS", "10"),
        ("KAFKA_LINGER_MS", "1000"),
    ])
    .await;
    let requests: Vec<(Vec<String>, serde_json::Value)> = (0..6).map(|_| batch(5)).collect();
    let started = Instant::now();
    let answers = futures::future::join_all(requests.iter().map(|(_, body)| async {
        let sent = Instant::now();
        let response = api.post_json(body).await;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let answer: serde_json::Value = response.json().await.unwrap();
        (status, retry_after, answer, sent.elapsed())
    }))
    .await;
    let accepted: Vec<usize> = (0..6).filter(|&i| answers[i].0 == 202).collect();
    let refused: Vec<usize> = (0..6).filter(|&i| answers[i].0 == 503).collect();
    assert_eq!(accepted.len(), 2, "{answers:?}");
    assert_eq!(refused.len(), 4, "{answers:?}");
    for &i in &refused {
        let (_, retry_after, problem, took) = &answers[i];
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(problem["type"], "urn:eventpipe:problem:overloaded");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("API_MAX_IN_FLIGHT_EVENTS")
        );
        // Answered at once, not after the admitted ones' second of linger.
        assert!(*took < Duration::from_millis(700), "a 503 took {took:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the linger held"
    );

    // Only the accepted requests' events are on the topic.
    let on_topic = |n| -> BTreeSet<String> {
        api.read_topic(n)
            .into_iter()
            .map(|m| m.value["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected: BTreeSet<String> = accepted
        .iter()
        .flat_map(|&i| requests[i].0.clone())
        .collect();
    assert_eq!(on_topic(10), expected);
    assert_eq!(api.topic_message_count(), 10);

    // A client retries one refused request: its events, and only those, follow.
    let retried = refused[0];
    assert_eq!(api.post_json(&requests[retried].1).await.status(), 202);
    let mut expected = expected;
    expected.extend(requests[retried].0.clone());
    assert_eq!(on_topic(15), expected);
    assert_eq!(api.topic_message_count(), 15);
    let metrics = api.metrics_text().await;
    assert!(
        metrics.contains("eventpipe_api_events_rejected_total{reason=\"overloaded\"} 20"),
        "{metrics}"
    );
}

/// The same for requests: beyond `API_MAX_IN_FLIGHT_REQUESTS` being served,
/// one more is refused at once, before its body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_get_503_at_once() {
    let api = TestApi::start_with(&[
        ("API_MAX_IN_FLIGHT_REQUESTS", "2"),
        ("KAFKA_LINGER_MS", "1000"),
    ])
    .await;
    let requests: Vec<(Vec<String>, serde_json::Value)> = (0..5).map(|_| batch(1)).collect();
    let answers = futures::future::join_all(requests.iter().map(|(_, body)| async {
        let sent = Instant::now();
        let response = api.post_json(body).await;
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap();
        (status, answer, sent.elapsed())
    }))
    .await;
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(
        answers.iter().filter(|a| a.0 == 202).count(),
        2,
        "{answers:?}"
    );
    assert_eq!(refused.len(), 3, "{answers:?}");
    for (_, problem, took) in refused {
        assert_eq!(problem["type"], "urn:eventpipe:problem:overloaded");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("API_MAX_IN_FLIGHT_REQUESTS")
        );
        assert!(*took < Duration::from_millis(700), "a 503 took {took:?}");
    }
    assert_eq!(api.read_topic(2).len(), 2);
    assert_eq!(api.topic_message_count(), 2);
}
