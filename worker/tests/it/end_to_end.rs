//! API → Kafka → worker → PostgreSQL: every accepted event is one row,
//! with its fields intact.

use std::time::Duration;

use crate::support::*;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use eventpipe_store::schema::events;
use serde_json::json;

/// The columns of one stored event, read through the schema module, so a
/// schema.rs that disagrees with the migrations fails here.
type Row = (
    String,
    String,
    String,
    chrono::DateTime<chrono::Utc>,
    Option<serde_json::Value>,
    serde_json::Value,
    i32,
    i64,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_event_is_one_row_with_its_fields() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[]).await;

    let mut ids = Vec::new();
    for b in 0..5 {
        let batch: Vec<_> = (0..100)
            .map(|i| json!({"user_id": format!("user-{}", (b * 100 + i) % 17), "type": "purchase", "source": "web",
                            "timestamp": 1795441500000_i64 + i, "payload": {"amount": i, "currency": "EUR", "note": "ü\"x"}}))
            .collect();
        ids.extend(post_events(&api, &json!(batch)).await);
    }
    let one = post_events(&api, &json!({"event_id": "6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162", "user_id": "solo", "type": "login",
                                         "timestamp": "2026-11-23T13:00:00+01:00", "payload": {"success": false}})).await;
    ids.extend(one);
    db.wait_for_events(501, Duration::from_secs(30)).await;
    let distinct = db
        .count("SELECT count(DISTINCT event_id) AS n FROM events")
        .await;
    assert_eq!(distinct, 501);

    let mut conn = db.connect().await;
    let id = uuid::Uuid::parse_str("6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162").unwrap();
    let row: Row = events::table
        .filter(events::event_id.eq(id))
        .select((
            events::user_id,
            events::event_type,
            events::source,
            events::event_ts,
            events::timestamp_raw,
            events::payload,
            events::kafka_partition,
            events::kafka_offset,
        ))
        .first(&mut conn)
        .await
        .unwrap();
    let (user_id, event_type, source, event_ts, timestamp_raw, payload, partition, offset) = row;
    assert_eq!(
        (user_id.as_str(), event_type.as_str(), source.as_str()),
        ("solo", "login", "api")
    );
    assert_eq!(event_ts.to_rfc3339(), "2026-11-23T12:00:00+00:00");
    assert_eq!(timestamp_raw, Some(json!("2026-11-23T13:00:00+01:00")));
    assert_eq!(payload, json!({"success": false}));
    assert!((0..6).contains(&partition));
    assert!(offset >= 0);
    let with_note = db
        .count(
            "SELECT count(*) AS n FROM events WHERE payload->>'note' = 'ü\"x' AND source = 'web'",
        )
        .await;
    assert_eq!(with_note, 500);
    // Every id the API handed out is stored.
    let listed = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let found = db
        .count(&format!(
            "SELECT count(*) AS n FROM events WHERE event_id IN ({listed})"
        ))
        .await;
    assert_eq!(found, 501);

    wait_for_metric(&worker, "eventpipe_worker_events_stored_total", 501.0).await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
}
