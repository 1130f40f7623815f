//! A worker handed no partitions while the group's lag goes unconsumed
//! says so: `/ready` is 503 with the reason, the lag is reported for every
//! partition (0 for empty ones, not absent) whoever holds it, the stall is
//! measured; once it holds the partitions it stores everything exactly
//! once and is ready again.
//!
//! The group is stuck the way it was after a `kill -9` in the incident: a
//! member that took every partition died without leaving (a static member,
//! which sends no LeaveGroup), so the broker waits for it. The rejoin is
//! left out here (`WORKER_REJOIN_AFTER_SECS` far away): the embedded
//! broker marks every member active at each election, so a dead member
//! outlives rebalances that keep coming, and rejoins only delay its end
//! there; when a worker rejoins is tested on [`eventpipe_worker::progress`].

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support::*;

/// A static member of the worker's group that takes every partition of
/// the events topic, then dies without leaving the group.
fn squat_and_die(kafka: &eventpipe_embedded_kafka::EmbeddedKafka) {
    let squatter: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", "eventpipe-worker")
        .set("group.instance.id", "killed-worker")
        .set("session.timeout.ms", "15000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    squatter.subscribe(&[EVENTS]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while squatter.assignment().unwrap().count() < 6 {
        assert!(Instant::now() < deadline, "the squatter got no partitions");
        let _ = squatter.poll(Duration::from_millis(100));
    }
    drop(squatter);
}

async fn ready(worker: &Running) -> (u16, serde_json::Value) {
    let response = reqwest::get(worker.url("/ready")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_in_a_stalled_group_is_not_ready_and_reports_every_partitions_lag() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    // One user: every event on one partition, the other five empty.
    let batch: Vec<_> = (0..200)
        .map(|i| serde_json::json!({"user_id": "one", "type": "click", "payload": {"i": i}}))
        .collect();
    let accepted = post_events(&api, &serde_json::json!(batch)).await.len() as i64;

    squat_and_die(&kafka);
    let worker = start_worker(
        &kafka,
        &db,
        &[
            (
                "KAFKA_CONFIG",
                "session.timeout.ms=15000;heartbeat.interval.ms=500",
            ),
            ("WORKER_STALL_AFTER_SECS", "2"),
            ("WORKER_REJOIN_AFTER_SECS", "1000"),
        ],
    )
    .await;

    // Not ready, saying why, while it holds nothing and nothing moves.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = ready(&worker).await;
        if status == 503 && body["consuming"] == false {
            break body;
        }
        assert!(Instant::now() < deadline, "never reported idle: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (body["database"].clone(), body["kafka"].clone()),
        (true.into(), true.into())
    );
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("holds no partition"), "{reason}");
    assert!(reason.contains(&format!("{accepted} messages")), "{reason}");
    assert_eq!(
        metric(&worker, "eventpipe_worker_assigned_partitions").await,
        0.0
    );
    assert!(metric(&worker, "eventpipe_worker_group_stalled_seconds").await >= 2.0);
    // Every partition has a lag series, the empty ones at 0.
    let text = metrics_text(&worker).await;
    let lags: Vec<f64> = (0..6)
        .map(|p| {
            let series = format!(
                "eventpipe_worker_consumer_lag_messages{{partition=\"{p}\",topic=\"{EVENTS}\"}}"
            );
            sample(&text, &series)
                .unwrap_or_else(|| panic!("no lag series for partition {p}:\n{text}"))
        })
        .collect();
    assert_eq!(lags.iter().sum::<f64>(), accepted as f64, "{lags:?}");
    assert_eq!(lags.iter().filter(|&&l| l == 0.0).count(), 5, "{lags:?}");

    // Once the dead member is gone, it gets the partitions, stores
    // everything once, and is ready.
    db.assert_each_stored_once(accepted, Duration::from_secs(60))
        .await;
    wait_ready(&worker).await;
    wait_for_metric(&worker, "eventpipe_worker_assigned_partitions", 6.0).await;
    worker.stop().await.unwrap();
    assert_eq!(committed(&kafka), accepted);
    api.stop().await.unwrap();
}

/// The worker's DLQ and anomalies producer heals like the API's: a broker
/// refusing its sends makes the worker not ready, the producer is replaced,
/// and once the broker accepts, the poison message reaches the DLQ, its
/// offset is committed and the worker is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_producer_is_replaced_and_the_worker_recovers() {
    use eventpipe_embedded_kafka::{ApiKey, ResponseError};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let db = TestDb::create().await;
    let kafka = kafka();
    let worker = start_worker(
        &kafka,
        &db,
        &[
            // The batch waits long enough for the fault to be in place
            // before the worker sends its first dead letter.
            ("WORKER_BATCH_WAIT_MS", "1000"),
            ("KAFKA_UNREADY_AFTER_FAILED_SENDS", "2"),
            ("KAFKA_REBUILD_AFTER_REFUSED_SENDS", "3"),
        ],
    )
    .await;
    wait_ready(&worker).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(EVENTS)
                .partition(0)
                .key("k")
                .payload("this is not json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    kafka.fail_requests(
        ApiKey::Produce,
        &[ResponseError::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH; 10_000],
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = ready(&worker).await;
        if status == 503 && body["producer"] == false {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "never reported the producer: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("sends to Kafka failed"),
        "{body}"
    );
    let recreated = "eventpipe_worker_kafka_producer_recreated_total{reason=\"refused\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&worker, recreated).await < 1.0 {
        assert!(Instant::now() < deadline, "the producer was never replaced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed(&kafka),
        0,
        "nothing committed before the dead letter is out"
    );

    kafka.clear_request_errors(ApiKey::Produce);
    wait_for_metric(
        &worker,
        "eventpipe_worker_dlq_messages_total{reason=\"not_json\"}",
        1.0,
    )
    .await;
    wait_ready(&worker).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(&kafka) != 1 {
        assert!(Instant::now() < deadline, "the offset was never committed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.stop().await.unwrap();
}
