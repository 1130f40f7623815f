//! The committed OpenAPI document is what the server serves, and Swagger UI
//! works from vendored assets.

use std::path::PathBuf;

use eventpipe_service::http::openapi::{SWAGGER_ASSETS, drift};

use crate::support::TestApi;

const REGENERATE: &str = "cargo run -p eventpipe-api -- openapi > openapi/api.json";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/api.json")
}

fn committed() -> String {
    std::fs::read_to_string(committed_path()).unwrap_or_default()
}

#[test]
fn committed_document_matches_the_code() {
    let drift = drift(
        &committed_path(),
        &eventpipe_api::openapi::document_json(),
        REGENERATE,
    );
    assert!(drift.is_none(), "{}", drift.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_and_swagger_ui() {
    let api = TestApi::start().await;
    let served: serde_json::Value = api
        .http
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed()).unwrap_or_default();
    assert!(
        served == committed,
        "served /openapi.json differs from openapi/api.json; run:\n    {REGENERATE}"
    );
    for path in ["/events", "/health", "/ready", "/metrics"] {
        assert!(served["paths"][path].is_object(), "{path} undocumented");
    }
    let statuses = served["paths"]["/events"]["post"]["responses"]
        .as_object()
        .unwrap();
    for code in [
        "200", "202", "400", "401", "413", "415", "422", "429", "503",
    ] {
        assert!(statuses.contains_key(code), "POST /events lacks {code}");
    }

    let page = api.http.get(api.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    for asset in SWAGGER_ASSETS {
        let response = api.http.get(api.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
}
