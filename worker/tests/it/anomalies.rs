//! Anomaly detection end to end: events posted through the real API,
//! stored by the real worker, anomalies in the table and on the topic.
//! The sequences are the ones users of earlier systems know: 11 logins in
//! a minute, 3 failed logins, a purchase of 1500, a heart rate of 200.

use std::time::{Duration, Instant};

use crate::support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::{Value, json};

/// A user id unique to this test run, so topics and tables hold only ours.
fn user(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn login(user: &str, secs: i64, success: bool) -> Value {
    json!({"user_id": user, "type": "login", "timestamp": yesterday_noon_plus(secs),
           "payload": {"success": success, "location": "Berlin, DE"}})
}

/// (rule, user) of every stored anomaly.
async fn stored(db: &TestDb) -> Vec<(String, String)> {
    use diesel::QueryableByName;
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        rule: String,
        #[diesel(sql_type = Text)]
        user_id: String,
    }
    let mut conn = db.connect().await;
    let rows: Vec<Row> =
        diesel::sql_query("SELECT rule, user_id FROM anomalies ORDER BY rule, user_id")
            .load(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|r| (r.rule, r.user_id)).collect()
}

async fn wait_for_anomalies(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = db.count("SELECT count(*) AS n FROM anomalies").await;
        if have >= n {
            assert_eq!(have, n, "{:?}", stored(db).await);
            return;
        }
        assert!(Instant::now() < deadline, "{have} anomalies, expected {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message on the anomalies topic: (key, value).
fn topic(kafka: &eventpipe_embedded_kafka::EmbeddedKafka, expect: usize) -> Vec<(String, Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[ANOMALIES]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Read until `expect` arrived, then a little longer to catch extras.
    let mut quiet_until = None;
    while Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            out.push((key, serde_json::from_slice(m.payload().unwrap()).unwrap()));
        }
        if out.len() >= expect {
            let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_secs(2));
            if Instant::now() > until {
                break;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_sequences_yield_their_anomalies_once_in_the_table_and_on_the_topic() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[]).await;

    let (logins, failures, buyer, heart) = (
        user("logins"),
        user("failures"),
        user("buyer"),
        user("heart"),
    );
    let mut events: Vec<Value> = (0..11).map(|i| login(&logins, i * 5, true)).collect();
    events.extend((0..3).map(|i| login(&failures, i, false)));
    events.push(
        json!({"user_id": buyer, "type": "purchase", "timestamp": yesterday_noon_plus(0),
                       "payload": {"amount": 1500, "currency": "USD"}}),
    );
    events.push(
        json!({"user_id": heart, "type": "heartbeat", "timestamp": yesterday_noon_plus(0),
                       "payload": {"heart_rate": 200}}),
    );
    post_events(&api, &json!(events)).await;
    db.wait_for_events(events.len() as i64, Duration::from_secs(30))
        .await;
    wait_for_anomalies(&db, 4).await;

    let mut expected = vec![
        ("heart_rate_high".to_owned(), heart.clone()),
        ("high_frequency_login".to_owned(), logins.clone()),
        ("high_value_purchase".to_owned(), buyer.clone()),
        ("repeated_login_failures".to_owned(), failures.clone()),
    ];
    expected.sort();
    assert_eq!(stored(&db).await, expected);

    let published = topic(&kafka, 4);
    let mut on_topic: Vec<(String, String)> = published
        .iter()
        .map(|(key, value)| {
            assert_eq!(key, value["user_id"].as_str().unwrap(), "keyed by user");
            (value["rule"].as_str().unwrap().to_owned(), key.clone())
        })
        .collect();
    on_topic.sort();
    assert_eq!(on_topic, expected, "each anomaly on the topic once");
    let purchase = &published.iter().find(|(k, _)| *k == buyer).unwrap().1;
    assert_eq!(purchase["severity"], "medium");
    assert_eq!(purchase["details"]["value"], 1500.0);
    assert_eq!(purchase["details"]["above"], 1000.0);
    // Each anomaly carries what fired it: the triggering event as stored,
    // on the topic, in the table and through the read API.
    let fired = &purchase["evidence"]["event"];
    assert_eq!(fired["event_id"], purchase["event_id"]);
    assert_eq!(fired["user_id"], buyer.as_str());
    assert_eq!(fired["type"], "purchase");
    assert_eq!(fired["source"], "api");
    assert_eq!(fired["payload"], json!({"amount": 1500, "currency": "USD"}));
    assert!(fired["time"].is_string() && fired["received_at"].is_string());
    let in_table = db
        .count(&format!(
            "SELECT count(*) AS n FROM anomalies
             WHERE user_id = '{buyer}' AND evidence->'event'->>'event_id' = event_id::text
               AND evidence->'event'->'payload'->>'currency' = 'USD'"
        ))
        .await;
    assert_eq!(in_table, 1);
    let listed: Value = reqwest::get(worker.url(&format!("/api/v1/users/{buyer}/anomalies")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"][0]["evidence"], purchase["evidence"],
        "{listed}"
    );
    wait_for_metric(
        &worker,
        "eventpipe_worker_anomalies_detected_total{rule=\"heart_rate_high\",severity=\"high\"}",
        1.0,
    )
    .await;
    // Acknowledged publications leave the outbox (just after the topic has them).
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.count("SELECT count(*) AS n FROM anomaly_outbox").await > 0 {
        assert!(Instant::now() < deadline, "anomalies left in the outbox");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each anomaly's detection latency was observed once.
    assert_eq!(
        metric(
            &worker,
            "eventpipe_worker_anomaly_detection_latency_seconds_count"
        )
        .await,
        4.0
    );
    assert!(
        metric(
            &worker,
            "eventpipe_worker_anomaly_detection_latency_seconds_sum"
        )
        .await
            > 0.0
    );
    // The outbox depth follows the table (read every 2 s).
    db.run_sql("INSERT INTO anomaly_outbox (anomaly_id) VALUES (gen_random_uuid())")
        .await;
    wait_for_metric(&worker, "eventpipe_worker_anomaly_outbox_messages", 1.0).await;
    db.run_sql("DELETE FROM anomaly_outbox").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&worker, "eventpipe_worker_anomaly_outbox_messages").await > 0.0 {
        assert!(Instant::now() < deadline, "the outbox depth stayed above 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Replaying the whole topic with a new group stores nothing new and
    // finds nothing new: the events are already stored.
    worker.stop().await.unwrap();
    let replay = start_worker(&kafka, &db, &[("KAFKA_GROUP_ID", "replay")]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&replay, "eventpipe_worker_events_duplicate_total").await < events.len() as f64 {
        assert!(Instant::now() < deadline, "the replay did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored(&db).await, expected);
    replay.stop().await.unwrap();
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_split_by_a_worker_restart_yield_what_an_uninterrupted_run_yields() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let (logins, failures, heart) = (user("logins"), user("failures"), user("heart"));

    // The mock cluster holds a rejoining group for the session timeout
    // minus a second even after the last member left; keep it short.
    let group = [(
        "KAFKA_CONFIG",
        "session.timeout.ms=3000;heartbeat.interval.ms=500",
    )];
    let first = start_worker(&kafka, &db, &group).await;
    let mut before: Vec<Value> = (0..6).map(|i| login(&logins, i * 5, true)).collect();
    before.extend((0..2).map(|i| login(&failures, i, false)));
    before.push(json!({"user_id": heart, "type": "heartbeat", "timestamp": yesterday_noon_plus(0), "payload": {"heart_rate": 70}}));
    post_events(&api, &json!(before)).await;
    db.wait_for_events(before.len() as i64, Duration::from_secs(30))
        .await;
    first.stop().await.unwrap();
    assert!(stored(&db).await.is_empty(), "nothing fired yet");

    // A fresh worker knows nothing: it must rebuild each user's state from
    // PostgreSQL to see the rest of each sequence complete it.
    let second = start_worker(&kafka, &db, &group).await;
    let mut after: Vec<Value> = (6..11).map(|i| login(&logins, i * 5, true)).collect();
    after.push(login(&failures, 2, false));
    after.push(json!({"user_id": heart, "type": "heartbeat", "timestamp": yesterday_noon_plus(60), "payload": {"heart_rate": 115}}));
    post_events(&api, &json!(after)).await;
    db.wait_for_events((before.len() + after.len()) as i64, Duration::from_secs(60))
        .await;
    wait_for_anomalies(&db, 3).await;
    let mut expected = vec![
        ("heart_rate_spike".to_owned(), heart),
        ("high_frequency_login".to_owned(), logins),
        ("repeated_login_failures".to_owned(), failures),
    ];
    expected.sort();
    assert_eq!(stored(&db).await, expected);
    second.stop().await.unwrap();
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_users_keeps_the_state_under_its_cap() {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let worker = start_worker(&kafka, &db, &[("WORKER_ANOMALY_MAX_USERS", "100")]).await;
    let prefix = user("flood");
    let mut posted = 0;
    for round in 0..10 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                json!({"user_id": format!("{prefix}-{round}-{i}"), "type": "heartbeat",
                            "timestamp": yesterday_noon_plus(round), "payload": {"heart_rate": 70}})
            })
            .collect();
        posted += events.len();
        post_events(&api, &json!(events)).await;
    }
    db.wait_for_events(posted as i64, Duration::from_secs(60))
        .await;
    // The gauges follow the commit of the batch they describe.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut users = 0.0;
    while users == 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        users = metric(&worker, "eventpipe_worker_anomaly_state_users").await;
    }
    assert!(users > 0.0 && users <= 100.0, "{users} users in memory");
    let entries = metric(&worker, "eventpipe_worker_anomaly_state_entries").await;
    assert!(
        entries <= 100.0,
        "{entries} entries (one heart rate per user at most)"
    );
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
}
