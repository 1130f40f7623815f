//! The committed OpenAPI document is what the worker serves, and Swagger
//! UI works from vendored assets.

use std::path::PathBuf;

use eventpipe_service::http::openapi::{SWAGGER_ASSETS, drift};

use crate::support::*;

const REGENERATE: &str = "cargo run -p eventpipe-worker -- openapi > openapi/worker.json";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/worker.json")
}

fn committed() -> String {
    std::fs::read_to_string(committed_path()).unwrap_or_default()
}

#[test]
fn committed_document_matches_the_code() {
    let drift = drift(
        &committed_path(),
        &eventpipe_worker::openapi::document_json(),
        REGENERATE,
    );
    assert!(drift.is_none(), "{}", drift.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_and_swagger_ui() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let worker = start_worker(&kafka, &db, &[]).await;
    wait_ready(&worker).await;
    let served: serde_json::Value = reqwest::get(worker.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed()).unwrap_or_default();
    assert!(
        served == committed,
        "served /openapi.json differs from openapi/worker.json; run:\n    {REGENERATE}"
    );
    for path in [
        "counts/total",
        "counts/timeseries",
        "counts/breakdown",
        "anomalies/counts",
        "anomalies/timeseries",
        "anomalies/recent",
    ] {
        let responses = served["paths"][format!("/api/v1/analytics/{path}")]["get"]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{path} undocumented"));
        for code in ["200", "400", "401", "503"] {
            assert!(responses.contains_key(code), "{path} lacks {code}");
        }
    }
    // The shared plumbing is on: request ids, problem documents for routes
    // that do not exist.
    let missing = reqwest::get(worker.url("/api/v1/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let page = reqwest::get(worker.url("/docs/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    for asset in SWAGGER_ASSETS {
        let response = reqwest::get(worker.url(asset)).await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    worker.stop().await.unwrap();
}

/// What the document says of the automatic interval is what the code does.
#[test]
fn the_documented_automatic_interval_is_the_code_s() {
    let document: serde_json::Value =
        serde_json::from_str(&eventpipe_worker::openapi::document_json()).unwrap();
    let parameters = document["paths"]["/api/v1/analytics/counts/timeseries"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let interval = parameters.iter().find(|p| p["name"] == "interval").unwrap();
    let said = interval["description"].as_str().unwrap();
    let buckets = eventpipe_query::analytics::AUTO_BUCKETS;
    assert!(
        said.contains(&format!("at most {buckets} buckets")),
        "the interval's description says {said:?}, the code aims at {buckets} buckets"
    );
}
