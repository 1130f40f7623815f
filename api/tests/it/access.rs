//! API keys and per-key rate limits: refused requests get 401 or 429 with
//! a reason and produce nothing; operational routes stay open.

use crate::support::{TestApi, event};
use eventpipe_api::config::KeyDigests;
use serde_json::{Value, json};

fn digest(key: &str) -> String {
    hex_encode(&KeyDigests::digest(key))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn post_with_key(api: &TestApi, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_keys_get_in() {
    let keys_file = std::env::temp_dir().join(format!("eventpipe-keys-{}", uuid::Uuid::new_v4()));
    std::fs::write(
        &keys_file,
        format!("# ops team\n{}\n\n", digest("file-key")),
    )
    .unwrap();
    let api = TestApi::start_with(&[
        ("API_KEY_SHA256", &digest("env-key")),
        ("API_KEYS_FILE", keys_file.to_str().unwrap()),
    ])
    .await;

    for (key, expected) in [
        (None, "missing API key"),
        (Some("wrong-key"), "invalid API key"),
    ] {
        let response = post_with_key(&api, key, event("u", "click")).await;
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains(expected),
            "{body}"
        );
    }
    let basic = api
        .http
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .header("authorization", "Basic ZW52LWtleQ==")
        .body(event("u", "click").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(api.topic_message_count(), 0);

    assert_eq!(
        post_with_key(&api, Some("env-key"), event("u", "click"))
            .await
            .status(),
        202
    );
    assert_eq!(
        post_with_key(&api, Some("file-key"), event("u", "click"))
            .await
            .status(),
        202
    );
    assert_eq!(api.topic_message_count(), 2);

    for path in ["/health", "/ready", "/metrics", "/docs/", "/openapi.json"] {
        let status = api.http.get(api.url(path)).send().await.unwrap().status();
        assert_eq!(status, 200, "{path} must stay open");
    }
    std::fs::remove_file(keys_file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_has_its_own_event_rate() {
    let api = TestApi::start_with(&[
        (
            "API_KEY_SHA256",
            &format!("{},{}", digest("a"), digest("b")),
        ),
        ("API_RATE_LIMIT_EVENTS_PER_SEC", "0.5"),
        ("API_RATE_LIMIT_BURST", "5"),
    ])
    .await;
    let batch = |n: usize| json!((0..n).map(|_| event("u", "click")).collect::<Vec<_>>());
    assert_eq!(post_with_key(&api, Some("a"), batch(3)).await.status(), 202);
    assert_eq!(post_with_key(&api, Some("a"), batch(2)).await.status(), 202);

    let limited = post_with_key(&api, Some("a"), batch(1)).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "urn:eventpipe:problem:rate-limited");

    // Another key is not held back by the first one's spending.
    assert_eq!(post_with_key(&api, Some("b"), batch(5)).await.status(), 202);
    // A request that can never fit the bucket is refused too.
    assert_eq!(post_with_key(&api, Some("b"), batch(6)).await.status(), 429);
    assert_eq!(api.topic_message_count(), 10);
}
