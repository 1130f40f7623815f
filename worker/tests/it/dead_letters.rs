//! Messages that can never be stored go to the DLQ with headers naming the
//! error and where they came from; the valid messages around them are
//! stored and the partition keeps moving.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::*;
use eventpipe_contract::{Rules, validate_event};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn valid(user: &str) -> Vec<u8> {
    let raw: Box<serde_json::value::RawValue> = serde_json::value::RawValue::from_string(format!(
        r#"{{"user_id":"{user}","type":"click"}}"#
    ))
    .unwrap();
    validate_event(&raw, chrono::Utc::now(), &Rules::default())
        .unwrap()
        .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dlq_and_the_rest_is_stored() {
    let db = TestDb::create().await;
    // Rows the database itself refuses: a constraint only this test has.
    let mut conn = db.connect().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(
            "ALTER TABLE events ADD CONSTRAINT refuse_evil CHECK (user_id <> 'evil')",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    let kafka = kafka();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    // All on one partition, so "the partition keeps moving" is visible.
    let messages: Vec<(Vec<u8>, Option<&str>)> = vec![
        (valid("before"), Some("1")),
        (b"this is not json".to_vec(), None),
        (br#"{"user_id":"u","type":"click"}"#.to_vec(), Some("1")),
        (valid("wrong-schema"), Some("2")),
        (valid("evil"), Some("1")),
        (valid("after"), Some("1")),
    ];
    for (value, schema) in &messages {
        let mut headers = OwnedHeaders::new();
        if let Some(v) = schema {
            headers = headers.insert(Header {
                key: "eventpipe-schema-version",
                value: Some(*v),
            });
        }
        producer
            .send(
                FutureRecord::to(EVENTS)
                    .partition(2)
                    .key("k")
                    .payload(value)
                    .headers(headers),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let worker = start_worker(&kafka, &db, &[]).await;
    db.wait_for_events(2, Duration::from_secs(30)).await;
    let stored = db
        .count("SELECT count(*) AS n FROM events WHERE user_id IN ('before', 'after')")
        .await;
    assert_eq!(stored, 2);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", "dlq-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(DLQ, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} of 4 DLQ messages",
            dead.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let headers: HashMap<String, String> = m
                .headers()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect();
            dead.push((m.payload().unwrap().to_vec(), headers));
        }
    }
    let reasons: Vec<&str> = dead
        .iter()
        .map(|(_, h)| h["eventpipe-dlq-reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "not_json",
            "invalid_event",
            "unsupported_schema",
            "refused_by_database"
        ]
    );
    for ((payload, headers), offset) in dead.iter().zip([1, 2, 3, 4]) {
        assert_eq!(headers["eventpipe-dlq-source-topic"], EVENTS);
        assert_eq!(headers["eventpipe-dlq-source-partition"], "2");
        assert_eq!(headers["eventpipe-dlq-source-offset"], offset.to_string());
        assert!(!headers["eventpipe-dlq-error"].is_empty());
        assert_eq!(payload, &messages[offset].0, "the original value is kept");
    }
    assert!(
        dead[3].1["eventpipe-dlq-error"].contains("refuse_evil"),
        "{:?}",
        dead[3].1
    );
    for reason in [
        "not_json",
        "invalid_event",
        "unsupported_schema",
        "refused_by_database",
    ] {
        let series = format!("eventpipe_worker_dlq_messages_total{{reason=\"{reason}\"}}");
        wait_for_metric(&worker, &series, 1.0).await;
    }
    worker.stop().await.unwrap();
}
