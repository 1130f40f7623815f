//! Every way a request can be refused: the status, the problem document,
//! and a message that names what was wrong (and the limit, when one was hit).

use std::io::Write;

use crate::support::{TestApi, event};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// Sends `request`, checks status and problem shape, returns the problem.
async fn problem(request: reqwest::RequestBuilder, status: u16) -> Value {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:eventpipe:problem:")
    );
    assert!(!body["title"].as_str().unwrap().is_empty());
    body
}

fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_saying_where() {
    let api = TestApi::start().await;
    let post = |body: Vec<u8>| {
        api.http
            .post(api.url("/events"))
            .header("content-type", "application/json")
            .body(body)
    };
    let p = problem(
        post(b"{\"user_id\": \"u\",\n \"type\" \"x\"}".to_vec()),
        400,
    )
    .await;
    assert!(detail(&p).contains("line 2 column 9"), "{p}");
    let p = problem(post(b"[{\"user_id\":\"u\",\"type\":\"x\"},".to_vec()), 400).await;
    assert!(detail(&p).starts_with("malformed JSON"), "{p}");
    let p = problem(post(b"{\"user_id\":\"\xff\"}".to_vec()), 400).await;
    assert!(detail(&p).contains("not valid UTF-8"), "{p}");
    let p = problem(post(Vec::new()), 400).await;
    assert!(detail(&p).contains("body is empty"), "{p}");
    let p = problem(
        post(b"not gzip".to_vec()).header("content-encoding", "gzip"),
        400,
    )
    .await;
    assert!(detail(&p).contains("not valid gzip"), "{p}");
    let p = problem(
        api.http
            .post(api.url("/events"))
            .header("content-type", "application/x-ndjson")
            .body("{\"user_id\":\"u\",\"type\":\"x\"}\n{nope}\n"),
        400,
    )
    .await;
    assert!(detail(&p).contains("on line 2"), "{p}");
    let p = problem(
        api.http
            .post(api.url("/events?dry_run=maybe"))
            .header("content-type", "application/json")
            .body(json!(event("u", "x")).to_string()),
        400,
    )
    .await;
    assert!(detail(&p).contains("invalid query string"), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_413_stating_the_limit() {
    let api = TestApi::start_with(&[
        ("API_MAX_BODY_BYTES", "2000"),
        ("API_MAX_DECOMPRESSED_BYTES", "3000"),
        ("API_MAX_BATCH_EVENTS", "5"),
        ("API_MAX_EVENT_BYTES", "200"),
    ])
    .await;
    let post = |body: Vec<u8>| {
        api.http
            .post(api.url("/events"))
            .header("content-type", "application/json")
            .body(body)
    };
    let big_body = json!({"user_id": "u", "type": "x", "payload": {"pad": "p".repeat(2100)}});
    let p = problem(post(big_body.to_string().into_bytes()), 413).await;
    assert!(detail(&p).contains("exceeds 2000 bytes"), "{p}");

    let batch: Vec<Value> = (0..6).map(|_| event("u", "x")).collect();
    let p = problem(post(json!(batch).to_string().into_bytes()), 413).await;
    assert!(detail(&p).contains("holds 6 events; at most 5"), "{p}");

    let big_event = json!([event("u", "x"), {"user_id": "u", "type": "x", "payload": {"pad": "p".repeat(300)}}]);
    let p = problem(post(big_event.to_string().into_bytes()), 413).await;
    assert!(
        detail(&p).contains("event 1 is") && detail(&p).contains("at most 200 bytes"),
        "{p}"
    );

    // Small on the wire, large once inflated: a gzip bomb in miniature.
    let inflated = format!(
        "[{}]",
        vec![json!(event("u", "x")).to_string(); 200].join(",")
    );
    let compressed = gzip(inflated.as_bytes());
    assert!(compressed.len() < 2000);
    let p = problem(post(compressed).header("content-encoding", "gzip"), 413).await;
    assert!(detail(&p).contains("more than 3000 bytes"), "{p}");
    assert_eq!(api.topic_message_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_types_are_415() {
    let api = TestApi::start().await;
    let body = json!(event("u", "x")).to_string();
    let p = problem(api.http.post(api.url("/events")).body(body.clone()), 415).await;
    assert!(detail(&p).contains("missing Content-Type"), "{p}");
    for content_type in [
        "text/plain",
        "application/xml",
        "application/json; charset=iso-8859-1",
    ] {
        let request = api
            .http
            .post(api.url("/events"))
            .header("content-type", content_type)
            .body(body.clone());
        let p = problem(request, 415).await;
        assert!(detail(&p).contains("not supported"), "{content_type}: {p}");
    }
    let request = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(body);
    let p = problem(request, 415).await;
    assert!(detail(&p).contains("Content-Encoding \"br\""), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_422_listing_every_error() {
    let api = TestApi::start().await;
    let batch = json!([
        event("ok", "click"),
        {"type": "Bad Type", "payload": []},
        {"user_id": "u", "type": "purchase", "payload": {"amount": -5, "currency": "XYZ"}},
        {"user_id": "u", "type": "heartbeat", "timestamp": "2999-01-01T00:00:00Z", "payload": {"heart_rate": "fast"}},
        {"user_id": "u", "type": "api_call", "usr": 1, "payload": {"status_code": 700}},
        {"user_id": "u", "type": "login", "event_id": "nope", "payload": {"success": "yes", "ip_address": "1.2.3"}},
        "not an object"
    ]);
    let request = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .body(batch.to_string());
    let p = problem(request, 422).await;
    assert_eq!(p["type"], "urn:eventpipe:problem:invalid-events");
    let errors: Vec<(u64, String)> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(!e["message"].as_str().unwrap().is_empty());
            (
                e["index"].as_u64().unwrap(),
                e["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (1, "/user_id"),
        (1, "/type"),
        (1, "/payload"),
        (2, "/payload/amount"),
        (2, "/payload/currency"),
        (3, "/timestamp"),
        (3, "/payload/heart_rate"),
        (4, "/usr"),
        (4, "/payload/status_code"),
        (5, "/event_id"),
        // json! sorts object keys, so the payload arrives in this order.
        (5, "/payload/ip_address"),
        (5, "/payload/success"),
        (6, ""),
    ];
    let expected: Vec<(u64, String)> = expected
        .iter()
        .map(|(i, p)| (*i, (*p).to_owned()))
        .collect();
    assert_eq!(errors, expected);
    assert!(detail(&p).contains("6 event(s) invalid"), "{p}");
    assert_eq!(
        api.topic_message_count(),
        0,
        "nothing of an invalid batch is produced"
    );

    let strict = TestApi::start_with(&[("EVENT_STRICT_TYPES", "true")]).await;
    let request = strict
        .http
        .post(strict.url("/events"))
        .header("content-type", "application/json")
        .body(json!(event("u", "signup")).to_string());
    let p = problem(request, 422).await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("strict mode"),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_refused() {
    let api = TestApi::start().await;
    for (path, status, slug) in [
        ("/nope", 404, "not-found"),
        ("/events", 405, "method-not-allowed"),
    ] {
        let response = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        assert!(response.headers().contains_key("x-request-id"), "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["type"],
            format!("urn:eventpipe:problem:{slug}"),
            "{path}"
        );
        assert_eq!(body["status"], status, "{path}");
    }
}
