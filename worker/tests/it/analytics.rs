//! The analytics endpoints against real PostgreSQL with known data, stored
//! through the worker's own batch writer (so the rollups are the ones
//! production builds): totals, buckets, zero-fill, filters, group_by,
//! partial-minute edges, bounds, bad parameters, the read token; rollups
//! exact after redelivery; the dashboards role reads the views and nothing
//! else.

use crate::support::*;
use diesel::sql_query;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use eventpipe_store::{DEFAULT_DEDUP_WINDOW, store_batch};
use serde_json::{Value, json};
use uuid::Uuid;

/// A database holding the known events, stored twice over (the second
/// time mixed with one new event) as a redelivery would, and a worker
/// serving it.
async fn serve_known(
    extra: &[(&str, &str)],
) -> (TestDb, Running, eventpipe_embedded_kafka::EmbeddedKafka) {
    let db = TestDb::create().await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    let rows = known_events();
    assert_eq!(
        store_batch(&pool, &rows[..5], DEFAULT_DEDUP_WINDOW)
            .await
            .unwrap()
            .inserted,
        5
    );
    assert_eq!(
        store_batch(&pool, &rows, DEFAULT_DEDUP_WINDOW)
            .await
            .unwrap()
            .inserted,
        4
    );
    assert_eq!(
        store_batch(&pool, &rows, DEFAULT_DEDUP_WINDOW)
            .await
            .unwrap()
            .inserted,
        0
    );
    let kafka = kafka();
    let worker = start_worker(&kafka, &db, extra).await;
    wait_ready(&worker).await;
    (db, worker, kafka)
}

async fn get(worker: &Running, path: &str) -> (u16, Value) {
    let response = reqwest::get(worker.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ok(worker: &Running, path: &str) -> Value {
    let (status, body) = get(worker, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

const HOUR: &str = "from=2026-11-20T10:00:00Z&to=2026-11-20T11:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_counts_are_exact_bucketed_filtered_and_zero_filled() {
    let (db, worker, _kafka) = serve_known(&[]).await;
    db.assert_rollups_exact().await;
    let total = |q: String| {
        let worker = &worker;
        async move { ok(worker, &format!("/api/v1/analytics/counts/total?{q}")).await["count"].clone() }
    };
    // The hour holds 8: 10:59:59.999 is in, 11:00:00 is out.
    assert_eq!(total(HOUR.to_owned()).await, 8);
    // Epoch milliseconds mean the same instants.
    let from = at("2026-11-20T10:00:00Z").timestamp_millis();
    let to = at("2026-11-20T11:00:00Z").timestamp_millis();
    assert_eq!(total(format!("from={from}&to={to}")).await, 8);
    // Partial minutes at both ends are counted from the events themselves.
    assert_eq!(
        total("from=2026-11-20T10:00:30Z&to=2026-11-20T10:01:30.001Z".to_owned()).await,
        3
    );
    assert_eq!(
        total("from=2026-11-20T10:00:10.001Z&to=2026-11-20T10:01:30Z".to_owned()).await,
        1
    );
    // Hour rows, minute rows and event edges together.
    assert_eq!(
        total("from=2026-11-20T09:59:59.5Z&to=2026-11-20T11:00:00.5Z".to_owned()).await,
        9
    );
    assert_eq!(
        total("from=2026-11-20T09:00:00Z&to=2026-11-20T12:00:00Z&type=login&source=web".to_owned())
            .await,
        5
    );
    let hourly = ok(
        &worker,
        "/api/v1/analytics/counts/timeseries?from=2026-11-20T09:00:00Z&to=2026-11-20T12:00:00Z&interval=1h",
    )
    .await;
    let counts: Vec<i64> = hourly["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 8, 1]);
    // Ten-minute buckets read five-minute rows, minutes and edges.
    let tens = ok(
        &worker,
        "/api/v1/analytics/counts/timeseries?from=2026-11-20T09:58:00Z&to=2026-11-20T11:00:00.001Z&interval=10m",
    )
    .await;
    let counts: Vec<i64> = tens["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 7, 0, 0, 0, 0, 1, 1]);
    assert_eq!(total(format!("{HOUR}&type=login")).await, 6);
    assert_eq!(
        total(format!("{HOUR}&type=login,purchase&source=api")).await,
        3
    );
    assert_eq!(total(format!("{HOUR}&source=nowhere")).await, 0);

    // Ungrouped series: every minute, zero-filled, sorted.
    let series = ok(
        &worker,
        "/api/v1/analytics/counts/timeseries?from=2026-11-20T10:00:00Z&to=2026-11-20T10:06:00Z&interval=1m",
    )
    .await;
    assert_eq!(series["interval"], "1m");
    assert_eq!(series["interval_ms"], 60000);
    let counts: Vec<i64> = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![4, 2, 0, 0, 0, 1]);
    assert_eq!(series["data"][0]["time"], "2026-11-20T10:00:00Z");
    assert_eq!(series["data"][5]["time"], "2026-11-20T10:05:00Z");
    assert!(series["data"][0].get("type").is_none());

    // Grouped by type: each bucket has every type seen (and every type
    // filtered for), in name order.
    let grouped = ok(
        &worker,
        "/api/v1/analytics/counts/timeseries?from=2026-11-20T10:00:00Z&to=2026-11-20T10:02:00Z&interval_ms=45000&group_by=type&type=login,purchase,view",
    )
    .await;
    assert_eq!(grouped["interval"], "1m", "45 s snaps up to 1m");
    let rows: Vec<(String, String, i64)> = grouped["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["time"].as_str().unwrap()[11..16].to_owned(),
                p["type"].as_str().unwrap().to_owned(),
                p["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("10:00", "login", 3),
        ("10:00", "purchase", 1),
        ("10:00", "view", 0),
        ("10:01", "login", 2),
        ("10:01", "purchase", 0),
        ("10:01", "view", 0),
    ]
    .map(|(t, k, c)| (t.to_owned(), k.to_owned(), c));
    assert_eq!(rows, expected);

    // Grouped by source, an hour per bucket, partial range.
    let by_source = ok(
        &worker,
        "/api/v1/analytics/counts/timeseries?from=2026-11-20T10:00:30Z&to=2026-11-20T11:00:00.001Z&interval=1h&group_by=source",
    )
    .await;
    let rows: Vec<(String, String, i64)> = by_source["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["time"].as_str().unwrap()[11..16].to_owned(),
                p["source"].as_str().unwrap().to_owned(),
                p["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("10:00", "api", 3),
        ("10:00", "device", 1),
        ("10:00", "web", 1),
        ("11:00", "api", 0),
        ("11:00", "device", 0),
        ("11:00", "web", 1),
    ]
    .map(|(t, k, c)| (t.to_owned(), k.to_owned(), c));
    assert_eq!(rows, expected);

    // Breakdown: largest first, ties by name, limited.
    let top = ok(
        &worker,
        &format!("/api/v1/analytics/counts/breakdown?{HOUR}&by=type&limit=2"),
    )
    .await;
    assert_eq!(top["total"], 8);
    assert_eq!(top["by"], "type");
    assert_eq!(
        top["data"],
        json!([{"type": "login", "count": 6}, {"type": "heartbeat", "count": 1}])
    );
    let sources = ok(
        &worker,
        &format!("/api/v1/analytics/counts/breakdown?{HOUR}&by=source"),
    )
    .await;
    assert_eq!(
        sources["data"],
        json!([{"source": "web", "count": 4}, {"source": "api", "count": 3}, {"source": "device", "count": 1}])
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_parameter_is_a_400_naming_it() {
    let (_db, worker, _kafka) = serve_known(&[]).await;
    let cases = [
        ("counts/total?from=yesterday", "from"),
        (
            "counts/total?from=2026-11-20T11:00:00Z&to=2026-11-20T10:00:00Z",
            "to",
        ),
        ("counts/total?to=1e12", "to"),
        ("counts/total?type=Login", "type"),
        ("counts/timeseries?interval=2m", "interval"),
        (
            "counts/timeseries?interval=1m&interval_ms=60000",
            "interval",
        ),
        ("counts/timeseries?interval_ms=-5", "interval_ms"),
        ("counts/timeseries?group_by=user_id", "group_by"),
        // 10 years of minutes is far past the bucket cap.
        (
            "counts/timeseries?from=2016-11-20T00:00:00Z&interval=1m",
            "interval",
        ),
        ("counts/breakdown?by=user", "by"),
        ("counts/breakdown?limit=0", "limit"),
        ("counts/breakdown?limit=1001", "limit"),
        ("anomalies/counts?severity=urgent", "severity"),
        ("anomalies/counts?group_by=user", "group_by"),
        ("anomalies/recent?limit=many", "limit"),
        ("counts/timeseries?groupby=type", "query"),
        ("anomalies/timeseries?interval=3h", "interval"),
        (
            "anomalies/counts?from=2026-11-20T10:00:00Z&to=1795168800000",
            "to",
        ),
    ];
    for (path, parameter) in cases {
        let response = reqwest::get(worker.url(&format!("/api/v1/analytics/{path}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{parameter}: ")),
            "{path}: {body}"
        );
    }
    let misspelt = get(&worker, "/api/v1/analytics/counts/timeseries?groupby=type")
        .await
        .1;
    assert!(
        misspelt["detail"]
            .as_str()
            .unwrap()
            .contains("unknown parameter `groupby`"),
        "{misspelt}"
    );
    // Six days of minutes is under the cap of 10000 buckets.
    let body = ok(
        &worker,
        "/api/v1/analytics/counts/timeseries?from=2026-11-14T10:00:00Z&to=2026-11-20T10:00:00Z&interval=1m",
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 6 * 24 * 60);
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_are_counted_by_rule_and_severity_and_listed_newest_first() {
    let (db, worker, _kafka) = serve_known(&[]).await;
    let mut conn = db.connect().await;
    let sql = insert_known_anomalies();
    conn.batch_execute(&sql).await.unwrap();

    let counts = ok(
        &worker,
        &format!("/api/v1/analytics/anomalies/counts?{HOUR}"),
    )
    .await;
    assert_eq!(counts["total"], 3);
    assert_eq!(
        counts["data"],
        json!([
            {"rule": "repeated_login_failures", "severity": "medium", "count": 2},
            {"rule": "high_value_purchase", "severity": "high", "count": 1},
        ])
    );
    let by_severity = ok(
        &worker,
        &format!("/api/v1/analytics/anomalies/counts?{HOUR}&group_by=severity&user_id=a"),
    )
    .await;
    assert_eq!(
        by_severity["data"],
        json!([{"severity": "high", "count": 1}, {"severity": "medium", "count": 1}])
    );

    let recent = ok(
        &worker,
        "/api/v1/analytics/anomalies/recent?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&limit=2&severity=medium,low",
    )
    .await;
    let listed: Vec<(&str, &str)> = recent["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["rule"].as_str().unwrap(), a["time"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("unusual_time_activity", "2026-11-20T11:00:00Z"),
            ("repeated_login_failures", "2026-11-20T10:01:30Z"),
        ]
    );
    assert_eq!(recent["data"][0]["details"], json!({"value": 4}));
    assert_eq!(
        recent["data"][0]["event_id"],
        Uuid::from_u128(9).to_string()
    );

    let series = ok(
        &worker,
        "/api/v1/analytics/anomalies/timeseries?from=2026-11-20T10:00:00Z&to=2026-11-20T12:00:00Z&interval=1h&group_by=rule&rule=high_value_purchase,unusual_time_activity",
    )
    .await;
    assert_eq!(
        series["data"],
        json!([
            {"time": "2026-11-20T10:00:00Z", "rule": "high_value_purchase", "count": 1},
            {"time": "2026-11-20T10:00:00Z", "rule": "unusual_time_activity", "count": 0},
            {"time": "2026-11-20T11:00:00Z", "rule": "high_value_purchase", "count": 0},
            {"time": "2026-11-20T11:00:00Z", "rule": "unusual_time_activity", "count": 1},
        ])
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_token_guards_analytics_and_nothing_else() {
    let (_db, worker, _kafka) = serve_known(&[("WORKER_ANALYTICS_TOKEN", "s3cret-read")]).await;
    let path = format!("/api/v1/analytics/counts/total?{HOUR}");
    let http = reqwest::Client::new();
    let missing = http.get(worker.url(&path)).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let wrong = http
        .get(worker.url(&path))
        .bearer_auth("s3cret-reed")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .get(worker.url(&path))
        .bearer_auth("s3cret-read")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.json::<Value>().await.unwrap()["count"], 8);
    for open in ["/health", "/ready", "/metrics", "/openapi.json"] {
        let response = http.get(worker.url(open)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{open}");
    }
    let metrics = http
        .get(worker.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "eventpipe_worker_http_requests_total{method=\"GET\",route=\"/api/v1/analytics/counts/total\",status=\"401\"} 2"
        ),
        "{metrics}"
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_role_reads_the_views_and_cannot_write() {
    let (db, worker, _kafka) = serve_known(&[]).await;
    worker.stop().await.unwrap();
    db.apply_dashboards_role().await;
    // Applying it again (after the next migration, say) is harmless.
    db.apply_dashboards_role().await;
    let mut reader = db.dashboards_reader().await;
    for (view, rows) in [
        ("v_events", 9),
        ("v_event_counts_minute", 6),
        ("v_event_counts_hour", 5),
        ("v_event_counts_day", 4),
        ("v_anomalies", 0),
    ] {
        let n = count(&mut reader, &format!("SELECT count(*) AS n FROM {view}")).await;
        assert_eq!(n, Ok(rows), "{view}");
    }
    for refused in [
        "SELECT count(*) AS n FROM events",
        "SELECT count(*) AS n FROM event_counts_minute",
        "SELECT count(*) AS n FROM anomalies",
    ] {
        let error = count(&mut reader, refused).await.unwrap_err();
        assert!(error.contains("permission denied"), "{refused}: {error}");
    }
    for write in [
        "DELETE FROM events",
        "INSERT INTO event_counts_minute VALUES (now(), 'x', 'y', 1)",
        "CREATE TABLE mine (x int)",
    ] {
        let error = sql_query(write)
            .execute(&mut reader)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("read-only transaction") || error.contains("permission denied"),
            "{write}: {error}"
        );
    }
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    let timeout: Vec<Setting> = sql_query("SHOW statement_timeout")
        .load(&mut reader)
        .await
        .unwrap();
    assert_eq!(timeout[0].statement_timeout, "30s");
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> Result<i64, String> {
    let rows: Vec<Count> = sql_query(sql).load(conn).await.map_err(|e| e.to_string())?;
    Ok(rows[0].n)
}
