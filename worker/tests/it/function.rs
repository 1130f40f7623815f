//! The worker as a Kafka-triggered AWS Lambda function, under
//! cargo-lambda's emulator: the real `eventpipe-worker` binary is invoked
//! with the batch events an event source mapping sends, built from the
//! real messages of the embedded cluster (posted through the real API,
//! plus a poison message). Each event is stored exactly once however often
//! its batch is delivered, poison goes to the DLQ, anomaly state carries
//! across invocations through PostgreSQL, and a batch that cannot be made
//! durable fails the invocation so the platform delivers it again. As an
//! HTTP function it serves the read side like the server.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use eventpipe_service::function::{Emulator, Function};
use eventpipe_worker::source::Received;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::support::*;

/// The worker binary as a function of `emulator`.
fn function(
    emulator: &Emulator,
    kafka: &eventpipe_embedded_kafka::EmbeddedKafka,
    db: &TestDb,
) -> Function {
    function_with(emulator, kafka, db, &[("WORKER_FUNCTION_RETRY_SECS", "2")])
}

/// [`function`] with `extra` variables.
fn function_with(
    emulator: &Emulator,
    kafka: &eventpipe_embedded_kafka::EmbeddedKafka,
    db: &TestDb,
    extra: &[(&str, &str)],
) -> Function {
    let mut vars = worker_vars(kafka, db, extra);
    vars.insert("RUST_LOG".to_owned(), "warn".to_owned());
    emulator
        .function(
            Path::new(env!("CARGO_BIN_EXE_eventpipe-worker")),
            vars,
            Stdio::inherit(),
        )
        .unwrap()
}

/// Every message of `topic`'s `partitions`, in partition and offset order.
fn read_all(
    kafka: &eventpipe_embedded_kafka::EmbeddedKafka,
    topic: &str,
    partitions: i32,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut total = 0;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .unwrap();
        total += high - low;
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (messages.len() as i64) < total {
        assert!(
            Instant::now() < deadline,
            "read {} of {total}",
            messages.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            messages.push(m.unwrap().detach());
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    messages
}

/// The batch event for `messages`, as a Kafka event source mapping sends it.
fn kafka_event(messages: &[&OwnedMessage]) -> Value {
    let received: Vec<Received> = messages.iter().map(|&m| m.clone().into()).collect();
    eventpipe_worker::function::kafka_event(&received)
}

/// Invokes the function with `event`: its answer's status, the
/// `X-Amz-Function-Error` header if any, and the body.
async fn invoke(emulator: &Emulator, event: &Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(emulator.invoke_url())
        .json(event)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-amz-function-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, error, body)
}

/// Invokes the function with `event`, expecting success; the answer.
async fn delivered(emulator: &Emulator, event: &Value, what: &str) -> Value {
    let (status, error, body) = invoke(emulator, event).await;
    assert_eq!((status, error), (200, None), "{what}: {body}");
    body
}

/// The messages of `all` that `earlier` did not hold.
fn newer<'a>(all: &'a [OwnedMessage], earlier: &[OwnedMessage]) -> Vec<&'a OwnedMessage> {
    all.iter()
        .filter(|m| {
            !earlier
                .iter()
                .any(|e| (e.partition(), e.offset()) == (m.partition(), m.offset()))
        })
        .collect()
}

fn failed_login(user: &str, secs: i64) -> Value {
    json!({"user_id": user, "type": "login", "timestamp": yesterday_noon_plus(secs),
           "payload": {"success": false, "location": "Berlin, DE"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_batches_are_stored_once_however_often_they_are_delivered() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;

    // The first batch: ordinary events, two failed logins of one user, and
    // a message that is not JSON.
    let mut first: Vec<Value> = (0..30)
        .map(|i| json!({"user_id": format!("fn-{}", i % 7), "type": "click", "payload": {"i": i}}))
        .collect();
    first.push(failed_login("mallory", 0));
    first.push(failed_login("mallory", 10));
    let first_ids = post_events(&api, &json!(first)).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    let poison_offset = producer
        .send(
            FutureRecord::to(EVENTS)
                .partition(3)
                .key("k")
                .payload("this is not json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .offset;
    let in_first = read_all(&kafka, EVENTS, 6);
    // The second: the third failed login, which only the stored history of
    // the first two makes an anomaly, and a few more.
    let mut second: Vec<Value> = (0..5)
        .map(|i| json!({"user_id": format!("fn2-{i}"), "type": "view"}))
        .collect();
    second.push(failed_login("mallory", 20));
    let second_ids = post_events(&api, &json!(second)).await;
    let all = read_all(&kafka, EVENTS, 6);
    let (batch_one, batch_two): (Vec<&OwnedMessage>, _) =
        (in_first.iter().collect(), newer(&all, &in_first));
    assert_eq!(
        (batch_one.len(), batch_two.len()),
        (first_ids.len() + 1, second_ids.len())
    );
    let (event_one, event_two) = (kafka_event(&batch_one), kafka_event(&batch_two));

    let emulator = Emulator::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let child = function(&emulator, &kafka, &db);

    // Delivered, then delivered again (the platform retries a batch whose
    // invocation it did not see succeed).
    for delivery in 0..2 {
        let body = delivered(&emulator, &event_one, &format!("delivery {delivery}")).await;
        assert_eq!(
            body,
            json!({"records": batch_one.len(), "dead_lettered": 1})
        );
        db.assert_each_stored_once(first_ids.len() as i64, Duration::from_secs(5))
            .await;
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM anomalies").await, 0);
    // The poison message is on the DLQ, once per delivery of its batch,
    // saying where it came from.
    let dead = read_all(&kafka, DLQ, 1);
    assert_eq!(dead.len(), 2);
    for m in &dead {
        let header = |name: &str| {
            m.headers()
                .and_then(|hs| hs.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("eventpipe-dlq-reason").as_deref(), Some("not_json"));
        assert_eq!(
            header("eventpipe-dlq-source-partition").as_deref(),
            Some("3")
        );
        assert_eq!(
            header("eventpipe-dlq-source-offset"),
            Some(poison_offset.to_string())
        );
        assert_eq!(m.payload(), Some(&b"this is not json"[..]));
    }

    // The second batch, in a new execution environment (the platform
    // moved the partitions), completes mallory's three failed logins: the
    // state is rebuilt from PostgreSQL, and there is one anomaly, stored
    // and published, however often the batch comes.
    drop(child);
    let child = function(&emulator, &kafka, &db);
    let total = (first_ids.len() + second_ids.len()) as i64;
    for delivery in 0..2 {
        let body = delivered(&emulator, &event_two, &format!("delivery {delivery}")).await;
        assert_eq!(
            body,
            json!({"records": batch_two.len(), "dead_lettered": 0})
        );
        db.assert_each_stored_once(total, Duration::from_secs(5))
            .await;
        assert_eq!(
            db.count("SELECT count(*) AS n FROM anomalies WHERE user_id = 'mallory'")
                .await,
            1
        );
    }
    let published = read_all(&kafka, ANOMALIES, 3);
    assert_eq!(published.len(), 1, "the anomaly is on its topic");
    let anomaly: Value = serde_json::from_slice(published[0].payload().unwrap()).unwrap();
    assert_eq!(anomaly["user_id"], "mallory");
    db.assert_rollups_exact().await;

    // PostgreSQL refuses: the invocation fails after
    // WORKER_FUNCTION_RETRY_SECS, nothing is half stored, and the platform's
    // next delivery stores the batch once the database is back.
    let third_ids = post_events(
        &api,
        &json!([{"user_id": "late", "type": "click"}, {"user_id": "later", "type": "click"}]),
    )
    .await;
    let with_third = read_all(&kafka, EVENTS, 6);
    let event_three = kafka_event(&newer(&with_third, &all));
    db.go_down().await;
    let started = Instant::now();
    let (status, error, body) = invoke(&emulator, &event_three).await;
    assert!(
        error.is_some() || status >= 400,
        "the invocation failed: {status} {body}"
    );
    assert!(
        body.to_string().contains("could not be made durable"),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "retried first");
    db.come_back().await;
    delivered(&emulator, &event_three, "after the outage").await;
    db.assert_each_stored_once(total + third_ids.len() as i64, Duration::from_secs(5))
        .await;

    drop(child);
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_side_answers_through_a_function_url_like_the_server() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[]).await;
    let events: Vec<Value> = (0..12)
        .map(|i| json!({"user_id": "reader", "type": if i % 3 == 0 { "login" } else { "click" }, "payload": {"i": i}}))
        .collect();
    let ids = post_events(&api, &json!(events)).await;
    db.assert_each_stored_once(ids.len() as i64, Duration::from_secs(30))
        .await;

    let emulator = Emulator::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let child = function_with(
        &emulator,
        &kafka,
        &db,
        &[("WORKER_FUNCTION_SERVES", "http")],
    );
    let get = async |url: String| {
        let response = reqwest::get(url).await.unwrap();
        let status = response.status().as_u16();
        let mut body: Value = response.json().await.unwrap_or(Value::Null);
        if let Some(object) = body.as_object_mut() {
            object.remove("request_id");
        }
        (status, body)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(emulator.function_url("/ready")).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the function never said it was ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in [
        "/api/v1/events?user_id=reader&limit=5",
        "/api/v1/users/reader",
        &format!("/api/v1/events/{}", ids[3]),
        "/api/v1/analytics/counts/total?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
        "/api/v1/events?limit=0",
    ] {
        let through_function = get(emulator.function_url(path)).await;
        let through_server = get(worker.url(path)).await;
        assert_eq!(through_function, through_server, "{path}");
        assert_ne!(through_function.1, Value::Null, "{path}");
    }
    let (status, page) = get(emulator.function_url("/api/v1/events?user_id=reader&limit=5")).await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(5), "{page}");

    drop(child);
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
}
