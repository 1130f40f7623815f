//! A producer that can no longer deliver makes the API not ready, is
//! replaced without a restart, and never turns a failed send into a 202:
//! the faults are the broker's own answers, injected into the embedded
//! cluster (a fatal sequence error, an epoch the broker keeps refusing).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use eventpipe_embedded_kafka::{ApiKey, ResponseError};
use serde_json::Value;

use crate::support::{TestApi, event, sample};

/// POSTs one event of `user`; the status and, for a 202, its event id.
async fn send(api: &TestApi, user: &str) -> (u16, Option<String>) {
    let response = api.post_json(&event(user, "click")).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let id = (status == 202).then(|| body["results"][0]["event_id"].as_str().unwrap().to_owned());
    if status != 202 {
        assert_eq!(status, 503, "{body}");
    }
    (status, id)
}

async fn ready(api: &TestApi) -> (u16, Value) {
    let response = api.http.get(api.url("/ready")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The value of `series` on the server's `/metrics`, which must have it.
async fn sample_of(api: &TestApi, series: &str) -> f64 {
    let metrics = api.metrics_text().await;
    sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// Every event answered 202 is on the topic.
fn assert_on_topic(api: &TestApi, accepted: &[String]) {
    let held = usize::try_from(api.topic_message_count()).unwrap();
    let on_topic: HashSet<String> = api
        .read_topic(held)
        .into_iter()
        .map(|m| m.value["event_id"].as_str().unwrap().to_owned())
        .collect();
    for id in accepted {
        assert!(
            on_topic.contains(id),
            "202 for {id}, which is not on the topic"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_is_replaced_without_a_restart() {
    let api = TestApi::start_with(&[("KAFKA_MESSAGE_TIMEOUT_MS", "3000")]).await;
    let mut accepted = vec![send(&api, "u").await.1.expect("202 before the fault")];

    // An out-of-order sequence on a partition the producer already wrote
    // to is fatal for an idempotent producer: librdkafka fails every later
    // send at once, for as long as the producer lives.
    api.kafka.fail_requests(
        ApiKey::Produce,
        &[ResponseError::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    assert_eq!(send(&api, "u").await.0, 503);

    // The producer is replaced and the next sends are accepted.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match send(&api, "u").await {
            (202, Some(id)) => {
                accepted.push(id);
                break;
            }
            _ => assert!(Instant::now() < deadline, "never accepted again"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        accepted.push(send(&api, "u").await.1.expect("202 after the replacement"));
    }
    api.wait_ready(Duration::from_secs(5)).await;
    assert_eq!(
        sample_of(
            &api,
            "eventpipe_api_kafka_producer_recreated_total{reason=\"fatal\"}"
        )
        .await,
        1.0
    );
    assert_on_topic(&api, &accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_refusing_every_send_makes_the_api_not_ready_until_it_accepts() {
    let api = TestApi::start_with(&[
        ("KAFKA_MESSAGE_TIMEOUT_MS", "3000"),
        ("KAFKA_UNREADY_AFTER_FAILED_SENDS", "3"),
        ("KAFKA_REBUILD_AFTER_REFUSED_SENDS", "6"),
    ])
    .await;
    let mut accepted = vec![send(&api, "u").await.1.expect("202 before the fault")];

    // The broker refuses the producer's epoch on every produce request,
    // as the broker in the incident did after an outage.
    api.kafka.fail_requests(
        ApiKey::Produce,
        &[ResponseError::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH; 100_000],
    );
    for _ in 0..3 {
        assert_eq!(send(&api, "u").await.0, 503, "no 202 while Kafka refuses");
    }
    let (status, body) = ready(&api).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["producer"], false, "{body}");
    assert_eq!(body["kafka"], true, "metadata still answers: {body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("last 3 sends to Kafka failed"), "{reason}");

    // More refusals: the producer is replaced, and the new one is refused too.
    for _ in 0..10 {
        assert_eq!(send(&api, "u").await.0, 503, "no 202 while Kafka refuses");
    }
    assert!(
        sample_of(
            &api,
            "eventpipe_api_kafka_producer_recreated_total{reason=\"refused\"}"
        )
        .await
            >= 1.0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample_of(&api, "eventpipe_api_kafka_ready").await != 0.0 {
        assert!(
            Instant::now() < deadline,
            "eventpipe_api_kafka_ready stayed 1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ready(&api).await.0, 503, "still refusing, still not ready");

    // The broker accepts again. With no request to prove it (a load
    // balancer sends none to a replica that is not ready), readiness
    // returns once the failures stopped and Kafka answers.
    api.kafka.clear_request_errors(ApiKey::Produce);
    api.wait_ready(Duration::from_secs(25)).await;
    for _ in 0..5 {
        accepted.push(send(&api, "u").await.1.expect("202 once Kafka accepts"));
    }
    assert_on_topic(&api, &accepted);
}
