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

/// Commits, for the workers' group, every partition's end: as if the
/// workers had caught up.
fn workers_catch_up(api: &TestApi) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", api.kafka.bootstrap_servers())
        .set("group.id", "eventpipe-worker")
        .create()
        .unwrap();
    let mut ends = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = group
            .fetch_watermarks(TOPIC, p, Duration::from_secs(5))
            .unwrap();
        ends.add_partition_offset(TOPIC, p, Offset::Offset(high))
            .unwrap();
    }
    group.commit(&ends, CommitMode::Sync).unwrap();
}

/// The opt-in bound for real clusters: while any partition has
/// `API_MAX_BACKLOG_MESSAGES` messages the workers' group has not
/// committed, requests get 503 (nothing produced) and `/ready` says why;
/// once the group catches up, events are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_bound_refuses_while_a_partition_is_over_it_and_accepts_once_the_workers_catch_up()
 {
    let api = TestApi::start_with(&[
        ("API_MAX_BACKLOG_MESSAGES", "20"),
        ("API_BACKLOG_CHECK_MS", "50"),
    ])
    .await;
    // One user: every event on one partition. Nothing consumes them.
    let events: Vec<serde_json::Value> = (0..25).map(|_| event("backlogged", "click")).collect();
    assert_eq!(
        api.post_json(&serde_json::Value::Array(events))
            .await
            .status(),
        202
    );
    let refused = wait_for_status(&api, 503).await;
    assert_eq!(refused.0.as_deref(), Some("1"), "Retry-After");
    assert_eq!(refused.1["type"], "urn:eventpipe:problem:overloaded");
    let detail = refused.1["detail"].as_str().unwrap();
    assert!(
        detail.contains("has 25 messages the workers (group eventpipe-worker) have not committed"),
        "{detail}"
    );
    assert!(detail.contains("API_MAX_BACKLOG_MESSAGES (20)"), "{detail}");
    let ready = api.http.get(api.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["backlog"], false, "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("API_MAX_BACKLOG_MESSAGES"),
        "{ready}"
    );
    // A refused request produces nothing. (The bound is read, not
    // reserved: a request or two may have gone through before the read
    // after the first batch.)
    let held = api.topic_message_count();
    assert!((25..=28).contains(&held), "{held}");
    assert_eq!(
        api.post_json(&event("another", "click")).await.status(),
        503
    );
    assert_eq!(api.topic_message_count(), held);
    let metrics = api.metrics_text().await;
    assert!(
        sample(
            &metrics,
            "eventpipe_api_backlog_refused_events_total{bound=\"messages\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    tokio::task::block_in_place(|| workers_catch_up(&api));
    wait_for_status(&api, 202).await;
    api.wait_ready(Duration::from_secs(5)).await;
    assert_eq!(api.topic_message_count(), held + 1);
}

/// Posts one event until the answer has `status`; its Retry-After and body.
async fn wait_for_status(api: &TestApi, status: u16) -> (Option<String>, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = api.post_json(&event("another", "click")).await;
        if response.status().as_u16() == status {
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            return (retry_after, response.json().await.unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "no {status} within 10 s (last {})",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With a byte bound the API places events itself; it places them where
/// librdkafka's default partitioner does, so each user's events stay on
/// one partition whichever places them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_places_events_where_librdkafka_would() {
    let users: Vec<String> = (0..60).map(|i| format!("user-{i}-{}", i * 7919)).collect();
    let events = serde_json::Value::Array(users.iter().map(|u| event(u, "click")).collect());
    let partitions = |receipt: serde_json::Value| -> Vec<i64> {
        receipt["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partition"].as_i64().unwrap())
            .collect()
    };
    let by_librdkafka = TestApi::start().await;
    let response = by_librdkafka.post_json(&events).await;
    assert_eq!(response.status(), 202);
    let chosen = partitions(response.json().await.unwrap());
    let ours: Vec<i64> = users
        .iter()
        .map(|u| i64::from(eventpipe_api::sink::partition_of(u.as_bytes(), PARTITIONS)))
        .collect();
    assert_eq!(chosen, ours);
    assert!(
        ours.iter().collect::<BTreeSet<_>>().len() == 6,
        "60 users, every partition"
    );

    let placing = TestApi::start_with(&[("API_MAX_BACKLOG_BYTES", "8388608")]).await;
    let response = placing.post_json(&events).await;
    assert_eq!(response.status(), 202);
    assert_eq!(partitions(response.json().await.unwrap()), ours);
}
