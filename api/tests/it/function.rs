//! The API as an AWS Lambda function, under cargo-lambda's emulator: the
//! real `eventpipe-api` binary takes its invocations from the emulated
//! runtime API, clients POST through the emulated function URL, and what
//! it acknowledged is on the embedded Kafka; its answers are the HTTP
//! server's, receipts and error bodies alike.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use eventpipe_service::function::{Emulator, Function};
use serde_json::{Value, json};

use crate::support::*;

/// The API binary as a function of `emulator`, producing to `bootstrap`.
fn function(emulator: &Emulator, bootstrap: &str) -> Function {
    emulator
        .function(
            Path::new(env!("CARGO_BIN_EXE_eventpipe-api")),
            [
                ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
                ("KAFKA_EVENTS_TOPIC", TOPIC),
                ("RUST_LOG", "warn"),
            ],
            Stdio::inherit(),
        )
        .unwrap()
}

/// The answer's status and JSON body, without what differs between two
/// answers to the same request (request ids, receipt times).
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.unwrap();
    if let Some(object) = body.as_object_mut() {
        object.remove("request_id");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_answers_like_the_server_and_its_202s_are_on_kafka() {
    let api = TestApi::start().await;
    let emulator = Emulator::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let started = Instant::now();
    let mut child = function(&emulator, &api.kafka.bootstrap_servers());
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(emulator.function_url("/events"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    // The first invocation waits for the environment to start.
    let event = json!({"user_id": "u1", "type": "click", "payload": {"n": 1}});
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match post(event.clone()).await {
            Ok(response) if response.status() != 502 => break response,
            _ => {}
        }
        assert!(child.is_running(), "the function exited");
        assert!(Instant::now() < deadline, "the function never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "first answer {:?} after the process started",
        started.elapsed()
    );
    let (status, single) = answer(first).await;
    assert_eq!(status, 202, "{single}");
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"user_id": format!("u{i}"), "type": "view", "payload": {"i": i}}))
        .collect();
    let (status, batched) = answer(post(json!(batch)).await.unwrap()).await;
    assert_eq!(status, 202, "{batched}");

    // Everything acknowledged is on the topic, with the receipts' ids.
    assert_eq!(
        (single["accepted"].clone(), batched["accepted"].clone()),
        (json!(1), json!(20))
    );
    let mut acknowledged: Vec<(String, i64, i64)> = single["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(batched["results"].as_array().unwrap())
        .map(|r| {
            assert_eq!(r["status"], "accepted", "{r}");
            (
                r["event_id"].as_str().unwrap().to_owned(),
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    acknowledged.sort();
    assert_eq!(acknowledged.len(), 21);
    let mut on_topic: Vec<(String, i64, i64)> = api
        .read_topic(21)
        .iter()
        .map(|m| {
            (
                m.value["event_id"].as_str().unwrap().to_owned(),
                i64::from(m.partition),
                m.offset,
            )
        })
        .collect();
    on_topic.sort();
    assert_eq!(on_topic, acknowledged);

    // A bad request gets the server's answer, field errors and all.
    let bad = json!([{"user_id": "", "type": "click"}, {"type": 7, "payload": []}]);
    let through_function = answer(post(bad.clone()).await.unwrap()).await;
    let through_server = answer(api.post_json(&bad).await).await;
    assert_eq!(through_function, through_server);
    assert!(
        (400..500).contains(&through_function.0),
        "{through_function:?}"
    );
    assert_eq!(api.topic_message_count(), 21, "nothing more was produced");

    drop(child);
}
