//! The read API over real PostgreSQL, served by the real worker: pages
//! walked to the end (each event once, newest first, ties broken by id),
//! also while events keep arriving; every filter; one event with its
//! anomalies; 404 for one not stored; bad parameters and cursors refused
//! naming them; user ids that need percent-encoding; the read token; the
//! summary.

use std::collections::HashSet;

use diesel_async::SimpleAsyncConnection;
use eventpipe_store::{DEFAULT_DEDUP_WINDOW, NewEvent, store_batch};
use serde_json::Value;
use uuid::Uuid;

use crate::support::*;

async fn get(worker: &Running, path: &str) -> (u16, Value) {
    let response = reqwest::get(worker.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn serve(
    rows: &[NewEvent],
    extra: &[(&str, &str)],
) -> (TestDb, Running, eventpipe_embedded_kafka::EmbeddedKafka) {
    let db = TestDb::create().await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    store_batch(&pool, rows, DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    let kafka = kafka();
    let worker = start_worker(&kafka, &db, extra).await;
    wait_ready(&worker).await;
    (db, worker, kafka)
}

/// Every page of `query` from the start, as event ids in order.
async fn walk(worker: &Running, query: &str, between_pages: impl AsyncFn(usize)) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let path = match &cursor {
            Some(c) => format!("/api/v1/events?{query}&cursor={c}"),
            None => format!("/api/v1/events?{query}"),
        };
        let (status, body) = get(worker, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        for event in body["data"].as_array().unwrap() {
            ids.push(event["event_id"].as_str().unwrap().parse().unwrap());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        between_pages(page).await;
    }
    ids
}

/// 40 events over 10 instants, four per instant (ties), users u0..u3.
fn forty() -> Vec<NewEvent> {
    (0..40_u128)
        .map(|n| {
            let kind = ["login", "purchase", "click", "heartbeat"][(n % 4) as usize];
            let ts = format!("2026-11-20T10:{:02}:00Z", n / 4);
            event(
                n + 1,
                &format!("u{}", n % 4),
                kind,
                ["web", "ios"][(n % 2) as usize],
                &ts,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_every_event_once_newest_first_even_while_events_arrive() {
    let rows = forty();
    let (db, worker, _kafka) = serve(&rows, &[]).await;
    // Newest first, ties (same event time) by id, descending.
    let mut expected: Vec<&NewEvent> = rows.iter().collect();
    expected.sort_by_key(|e| std::cmp::Reverse((e.event_ts, e.event_id)));
    let expected: Vec<Uuid> = expected.iter().map(|e| e.event_id).collect();
    assert_eq!(walk(&worker, "limit=7", async |_| {}).await, expected);
    assert_eq!(walk(&worker, "limit=1000", async |_| {}).await, expected);

    // Events arriving between pages, newer and older than the page
    // boundary: every event that existed at the start comes exactly once.
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    let arrived = walk(&worker, "limit=6", async |page| {
        let n = 1000 + page as u128 * 2;
        let newer = event(n, "late", "click", "web", "2026-11-20T11:00:00Z");
        let older = event(n + 1, "late", "click", "web", "2026-11-20T09:00:00Z");
        store_batch(&pool, &[newer, older], DEFAULT_DEDUP_WINDOW)
            .await
            .unwrap();
    })
    .await;
    let seen: HashSet<Uuid> = arrived.iter().copied().collect();
    assert_eq!(seen.len(), arrived.len(), "an event came twice");
    for id in &expected {
        assert!(seen.contains(id), "{id} was missed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_narrows_the_list() {
    let rows = forty();
    let (_db, worker, _kafka) = serve(&rows, &[]).await;
    let count = |query: &'static str| {
        let worker = &worker;
        async move { walk(worker, query, async |_| {}).await.len() }
    };
    assert_eq!(count("user_id=u1").await, 10);
    assert_eq!(count("type=login").await, 10);
    assert_eq!(count("type=login,purchase").await, 20);
    assert_eq!(count("source=ios").await, 20);
    assert_eq!(count("user_id=u1&source=ios").await, 10);
    assert_eq!(count("user_id=u1&type=login").await, 0);
    // [from, to): 10:02 and 10:03, four events each.
    assert_eq!(
        count("from=2026-11-20T10:02:00Z&to=2026-11-20T10:04:00Z").await,
        8
    );
    assert_eq!(count("from=1795168920000&to=1795169040000").await, 8);
    assert_eq!(count("user_id=nobody").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_with_its_anomalies_or_404_until_stored() {
    let mut rows = known_events();
    rows[3].payload = r#"{"amount": 1500, "currency": "USD"}"#.to_owned();
    rows[3].timestamp_raw = Some("1795168850000".to_owned());
    let (db, worker, _kafka) = serve(&rows, &[]).await;
    db.connect()
        .await
        .batch_execute(&insert_known_anomalies())
        .await
        .unwrap();
    let (status, body) = get(&worker, &format!("/api/v1/events/{}", Uuid::from_u128(4))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "a");
    assert_eq!(body["type"], "purchase");
    assert_eq!(body["source"], "api");
    assert_eq!(body["timestamp"], "2026-11-20T10:00:50Z");
    assert_eq!(body["timestamp_raw"], 1_795_168_850_000_i64);
    assert_eq!(
        body["payload"],
        serde_json::json!({"amount": 1500, "currency": "USD"})
    );
    assert_eq!(body["partition"], 0);
    assert_eq!(body["offset"], 4);
    assert!(body["stored_at"].as_str().unwrap().ends_with('Z'));
    let anomalies = body["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalies[0]["rule"], "high_value_purchase");

    let (status, body) = get(&worker, &format!("/api/v1/events/{}", Uuid::from_u128(1))).await;
    assert_eq!(status, 200);
    assert_eq!(body["anomalies"], serde_json::json!([]));
    assert!(body.get("timestamp_raw").is_none(), "{body}");

    let unknown = Uuid::from_u128(777);
    let response = reqwest::get(worker.url(&format!("/api/v1/events/{unknown}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:eventpipe:problem:not-found");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&unknown.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_and_cursors_are_named() {
    let (_db, worker, _kafka) = serve(&forty(), &[]).await;
    for (path, parameter) in [
        ("/api/v1/events?limit=0", "limit"),
        ("/api/v1/events?limit=1001", "limit"),
        ("/api/v1/events?limit=ten", "limit"),
        ("/api/v1/events?type=Login", "type"),
        ("/api/v1/events?from=yesterday", "from"),
        (
            "/api/v1/events?from=2026-11-20T11:00:00Z&to=2026-11-20T10:00:00Z",
            "to",
        ),
        ("/api/v1/events?cursor=not-a-cursor", "cursor"),
        ("/api/v1/events?cursor=v00", "cursor"),
        ("/api/v1/events?usr_id=a", "query"),
        ("/api/v1/events/not-a-uuid", "event_id"),
    ] {
        let (status, body) = get(&worker, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ids_that_need_encoding_round_trip() {
    let odd = ["a/b", "with space", "ünï cødé", "plus+and&amp", "50%"];
    let rows: Vec<NewEvent> = odd
        .iter()
        .enumerate()
        .map(|(i, user)| event(i as u128 + 1, user, "login", "web", "2026-11-20T10:00:00Z"))
        .collect();
    let (_db, worker, _kafka) = serve(&rows, &[]).await;
    for user in odd {
        let query = serde_urlencoded::to_string([("user_id", user)]).unwrap();
        let (status, body) = get(&worker, &format!("/api/v1/events?{query}")).await;
        assert_eq!(status, 200, "{user}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{user}: {body}");
        assert_eq!(data[0]["user_id"], user);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_token_guards_the_events() {
    let (_db, worker, _kafka) = serve(&forty(), &[("WORKER_ANALYTICS_TOKEN", "s3cret-read")]).await;
    let id = Uuid::from_u128(1);
    for path in ["/api/v1/events".to_owned(), format!("/api/v1/events/{id}")] {
        assert_eq!(get(&worker, &path).await.0, 401, "{path}");
        let response = reqwest::Client::new()
            .get(worker.url(&path))
            .bearer_auth("s3cret-read")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

/// One anomaly per event of [`forty`]: rule and severity by `n % 3`.
fn forty_anomalies() -> String {
    (1..=40_u128)
        .map(|n| {
            let (rule, severity) = [
                ("high_value_purchase", "high"),
                ("repeated_login_failures", "medium"),
                ("unusual_time_activity", "low"),
            ][(n % 3) as usize];
            format!(
                "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
                 SELECT '{}', event_id, user_id, '{rule}', '{severity}', 'd', event_ts, '{{}}'
                 FROM events WHERE event_id = '{}';",
                Uuid::from_u128(5000 + n),
                Uuid::from_u128(n)
            )
        })
        .collect()
}

/// Every page of `/api/v1/anomalies?{query}`, as anomaly ids in order.
async fn walk_anomalies(worker: &Running, query: &str) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut path = format!("/api/v1/anomalies?{query}");
    loop {
        let (status, body) = get(worker, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        for anomaly in body["data"].as_array().unwrap() {
            ids.push(anomaly["anomaly_id"].as_str().unwrap().parse().unwrap());
        }
        match body["next_cursor"].as_str() {
            Some(next) => path = format!("/api/v1/anomalies?{query}&cursor={next}"),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_pages_walk_every_anomaly_once_and_filter() {
    let rows = forty();
    let (db, worker, _kafka) = serve(&rows, &[]).await;
    db.connect()
        .await
        .batch_execute(&forty_anomalies())
        .await
        .unwrap();
    // Newest first by the event's time, ties by anomaly id, descending.
    let mut expected: Vec<(chrono::DateTime<chrono::Utc>, Uuid)> = (1..=40_u128)
        .map(|n| (rows[(n - 1) as usize].event_ts, Uuid::from_u128(5000 + n)))
        .collect();
    expected.sort_by_key(|key| std::cmp::Reverse(*key));
    let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(walk_anomalies(&worker, "limit=3").await, expected);
    assert_eq!(walk_anomalies(&worker, "limit=1000").await, expected);

    let count = |query: &'static str| {
        let worker = &worker;
        async move { walk_anomalies(worker, query).await.len() }
    };
    assert_eq!(count("severity=high").await, 13);
    assert_eq!(count("severity=high,low").await, 26);
    assert_eq!(count("rule=repeated_login_failures").await, 14);
    assert_eq!(count("user_id=u1").await, 10);
    assert_eq!(count("user_id=u1&severity=medium").await, 3);
    assert_eq!(
        count("from=2026-11-20T10:02:00Z&to=2026-11-20T10:04:00Z").await,
        8
    );

    for (path, parameter) in [
        ("/api/v1/anomalies?severity=critical", "severity"),
        ("/api/v1/anomalies?limit=0", "limit"),
        ("/api/v1/anomalies?cursor=nope", "cursor"),
        ("/api/v1/anomalies?group_by=rule", "query"),
    ] {
        let (status, body) = get(&worker, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_s_anomalies_by_path_with_encoded_ids_and_404_for_strangers() {
    let odd = ["a/b", "with space", "ünï cødé", "50%"];
    let rows: Vec<NewEvent> = odd
        .iter()
        .enumerate()
        .map(|(i, user)| {
            event(
                i as u128 + 1,
                user,
                "purchase",
                "web",
                "2026-11-20T10:00:00Z",
            )
        })
        .chain([event(99, "quiet", "click", "web", "2026-11-20T10:00:00Z")])
        .collect();
    let (db, worker, _kafka) = serve(&rows, &[]).await;
    let anomalies: String = (1..=4_u128)
        .map(|n| {
            format!(
                "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
                 SELECT '{}', event_id, user_id, 'high_value_purchase', 'high', 'd', event_ts, '{{}}'
                 FROM events WHERE event_id = '{}';",
                Uuid::from_u128(7000 + n),
                Uuid::from_u128(n)
            )
        })
        .collect();
    db.connect().await.batch_execute(&anomalies).await.unwrap();
    let encode = |user: &str| {
        user.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    for (i, user) in odd.iter().enumerate() {
        let path = format!("/api/v1/users/{}/anomalies", encode(user));
        let (status, body) = get(&worker, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{path}: {body}");
        assert_eq!(data[0]["user_id"], *user);
        assert_eq!(
            data[0]["event_id"],
            Uuid::from_u128(i as u128 + 1).to_string()
        );
    }
    // Seen, but no anomaly: an empty page. Never seen: 404.
    let (status, body) = get(&worker, "/api/v1/users/quiet/anomalies").await;
    assert_eq!((status, body["data"].clone()), (200, serde_json::json!([])));
    let (status, body) = get(&worker, "/api/v1/users/stranger/anomalies").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "urn:eventpipe:problem:not-found");
    // The user is in the path, not the query.
    let (status, body) = get(&worker, "/api/v1/users/quiet/anomalies?user_id=other").await;
    assert_eq!(
        (status, body["parameter"].clone()),
        (400, serde_json::json!("query"))
    );
    let (status, body) = get(&worker, "/api/v1/users/quiet/anomalies?severity=extreme").await;
    assert_eq!(
        (status, body["parameter"].clone()),
        (400, serde_json::json!("severity"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_profile_counts_the_window_and_scores_recent_anomalies_higher() {
    let now = chrono::Utc::now();
    let ago = |hours: i64| (now - chrono::Duration::hours(hours)).to_rfc3339();
    let rows = vec![
        event(1, "r/1", "purchase", "web", &ago(1)),
        event(2, "r/1", "purchase", "web", &ago(2)),
        event(3, "r/1", "login", "web", &ago(3)),
        event(4, "r/1", "login", "web", &ago(48)),
        event(5, "r/1", "login", "web", &ago(72)),
    ];
    let (db, worker, _kafka) = serve(&rows, &[]).await;
    // A high anomaly now, a medium one two days ago (a quarter of its weight).
    db.connect()
        .await
        .batch_execute(&format!(
            "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details) VALUES
             ('{}', '{}', 'r/1', 'high_value_purchase', 'high', 'd', '{}', '{{}}'),
             ('{}', '{}', 'r/1', 'repeated_login_failures', 'medium', 'd', '{}', '{{}}');",
            Uuid::from_u128(9001),
            Uuid::from_u128(1),
            ago(0),
            Uuid::from_u128(9002),
            Uuid::from_u128(4),
            ago(48),
        ))
        .await
        .unwrap();

    let (status, day) = get(&worker, "/api/v1/users/r%2F1").await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["user_id"], "r/1");
    assert_eq!(day["events_total"], 5);
    assert_eq!(day["window_hours"], 24);
    assert_eq!(
        day["events_by_type"],
        serde_json::json!([{"type": "purchase", "count": 2}, {"type": "login", "count": 1}])
    );
    assert_eq!(
        day["anomalies"],
        serde_json::json!([{"rule": "high_value_purchase", "severity": "high", "count": 1}])
    );
    let score = day["risk_score"].as_f64().unwrap();
    assert!((9.9..=10.0).contains(&score), "{score}");

    let (status, week) = get(&worker, "/api/v1/users/r%2F1?hours=168").await;
    assert_eq!(status, 200, "{week}");
    assert_eq!(week["anomalies"].as_array().unwrap().len(), 2);
    // 10 (now) + 3 · 0.5² (two days old)
    let score = week["risk_score"].as_f64().unwrap();
    assert!((10.7..=10.76).contains(&score), "{score}");
    assert!(week["first_seen"].as_str().unwrap() < week["last_seen"].as_str().unwrap());

    let (status, body) = get(&worker, "/api/v1/users/nobody").await;
    assert_eq!(
        (status, body["type"].clone()),
        (404, serde_json::json!("urn:eventpipe:problem:not-found"))
    );

    // Retention removed the user's events; their anomalies are kept
    // longer, and the user is known by them until they go too.
    db.connect()
        .await
        .batch_execute("DELETE FROM events WHERE user_id = 'r/1'")
        .await
        .unwrap();
    let (status, kept) = get(&worker, "/api/v1/users/r%2F1?hours=168").await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["events_total"], 0);
    assert_eq!(kept["anomalies"].as_array().unwrap().len(), 2);
    assert!(kept["first_seen"].as_str().unwrap() < kept["last_seen"].as_str().unwrap());
    let (status, listed) = get(&worker, "/api/v1/users/r%2F1/anomalies").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    db.connect()
        .await
        .batch_execute("DELETE FROM anomaly_outbox; DELETE FROM anomalies WHERE user_id = 'r/1'")
        .await
        .unwrap();
    for path in ["/api/v1/users/r%2F1", "/api/v1/users/r%2F1/anomalies"] {
        let (status, body) = get(&worker, path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    for hours in ["0", "8761", "soon"] {
        let (status, body) = get(&worker, &format!("/api/v1/users/r%2F1?hours={hours}")).await;
        assert_eq!(
            (status, body["parameter"].clone()),
            (400, serde_json::json!("hours")),
            "{hours}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_the_window_its_users_lag_and_the_dlq() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let now = chrono::Utc::now();
    let ago = |minutes: i64| now - chrono::Duration::minutes(minutes);
    // In the last hour: 3 events of 2 users (lags 1 s, 1 s, 100 s); two
    // hours ago: 1 event of a third user; three days ago: one more.
    let mut rows = vec![
        event(1, "s1", "login", "web", &ago(10).to_rfc3339()),
        event(2, "s1", "purchase", "web", &ago(20).to_rfc3339()),
        event(3, "s2", "login", "ios", &ago(30).to_rfc3339()),
        event(4, "s3", "click", "web", &ago(120).to_rfc3339()),
        event(5, "s4", "click", "web", &ago(3 * 24 * 60).to_rfc3339()),
    ];
    let received = [1, 1, 100, 1, 1];
    for (row, secs) in rows.iter_mut().zip(received) {
        row.received_at = chrono::Utc::now() - chrono::Duration::seconds(secs);
    }
    let (db, worker, kafka) = serve(&rows, &[]).await;
    db.connect()
        .await
        .batch_execute(&format!(
            "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details) VALUES
             ('{}', '{}', 's1', 'high_value_purchase', 'high', 'd', '{}', '{{}}'),
             ('{}', '{}', 's2', 'unusual_time_activity', 'low', 'd', '{}', '{{}}'),
             ('{}', '{}', 's4', 'unusual_time_activity', 'low', 'd', '{}', '{{}}');",
            Uuid::from_u128(9001),
            Uuid::from_u128(2),
            ago(20).to_rfc3339(),
            Uuid::from_u128(9002),
            Uuid::from_u128(3),
            ago(30).to_rfc3339(),
            Uuid::from_u128(9003),
            Uuid::from_u128(5),
            ago(3 * 24 * 60).to_rfc3339(),
        ))
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    for _ in 0..3 {
        producer
            .send(
                FutureRecord::<str, _>::to(DLQ).payload("dead"),
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
    }

    // The worker counts the DLQ every 2 seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let hour = loop {
        let (status, hour) = get(&worker, "/api/v1/summary?hours=1").await;
        assert_eq!(status, 200, "{hour}");
        if hour["dlq"]["messages"] == 3 || std::time::Instant::now() > deadline {
            break hour;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(hour["window_hours"], 1);
    assert_eq!(hour["events"]["total"], 3);
    assert_eq!(hour["events"]["unique_users"], 2);
    assert_eq!(
        hour["events"]["by_type"],
        serde_json::json!([{"type": "login", "count": 2}, {"type": "purchase", "count": 1}])
    );
    assert_eq!(hour["anomalies"]["total"], 2);
    assert_eq!(
        hour["anomalies"]["by_severity"],
        serde_json::json!({"high": 1, "low": 1})
    );
    // Two of three events waited about 1 s, one about 100 s.
    let p50 = hour["ingest_lag_ms"]["p50"].as_f64().unwrap();
    let p95 = hour["ingest_lag_ms"]["p95"].as_f64().unwrap();
    assert!(
        (1000.0 / 1.2..=1000.0 * 1.2 + 500.0).contains(&p50),
        "{hour}"
    );
    assert!((100_000.0 / 1.2..=100_000.0 * 1.2).contains(&p95), "{hour}");
    assert_eq!(hour["dlq"]["topic"], DLQ);
    assert_eq!(hour["dlq"]["messages"], 3, "{hour}");
    assert!(hour["dlq"]["counted_at"].is_string(), "{hour}");

    let (status, day) = get(&worker, "/api/v1/summary").await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["window_hours"], 24);
    assert_eq!(
        (&day["events"]["total"], &day["events"]["unique_users"]),
        (&serde_json::json!(4), &serde_json::json!(3))
    );
    let (_, week) = get(&worker, "/api/v1/summary?hours=168").await;
    assert_eq!(week["events"]["total"], 5);
    assert_eq!(week["anomalies"]["total"], 3);
    assert_eq!(
        week["anomalies"]["by_rule"][0],
        serde_json::json!({"rule": "unusual_time_activity", "severity": "low", "count": 2})
    );

    for hours in ["0", "8761", "x"] {
        let (status, body) = get(&worker, &format!("/api/v1/summary?hours={hours}")).await;
        assert_eq!(
            (status, body["parameter"].clone()),
            (400, serde_json::json!("hours")),
            "{hours}"
        );
    }
    // An empty window: no lag to tell.
    let empty = TestDb::create().await;
    let quiet = start_worker(&kafka, &empty, &[]).await;
    wait_ready(&quiet).await;
    let (_, nothing) = get(&quiet, "/api/v1/summary").await;
    assert_eq!(nothing["events"]["total"], 0);
    assert_eq!(nothing["ingest_lag_ms"], Value::Null);
}
