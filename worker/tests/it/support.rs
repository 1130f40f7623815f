//! The harness of the worker tests: a PostgreSQL database of its own per
//! test (cloned from the migrated template, dropped), an embedded Kafka cluster, the real
//! API to post through, and the real worker.
#![allow(dead_code)] // each test file uses a different part of it

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_store::NewEvent;
use eventpipe_store::ScratchDatabase;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const EVENTS: &str = "events";
pub const DLQ: &str = "events.dlq";
pub const ANOMALIES: &str = "anomalies";

/// A database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    _scratch: ScratchDatabase,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl TestDb {
    pub async fn create() -> Self {
        let scratch = ScratchDatabase::create(SERVER, "eventpipe_test")
            .await
            .unwrap();
        TestDb {
            name: scratch.name().to_owned(),
            url: scratch.url.clone(),
            _scratch: scratch,
        }
    }

    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.unwrap()
    }

    /// `SELECT count(*)`-shaped query returning one bigint column `n`.
    pub async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.connect().await;
        let rows: Vec<Count> = sql_query(sql).load(&mut conn).await.unwrap();
        rows[0].n
    }

    /// The per-minute, five-minute and hourly counts, the users and the
    /// lag histogram agree with the events table, group by group, and
    /// there is at least one event.
    pub async fn assert_rollups_exact(&self) {
        for (table, column, bucket) in [
            (
                "event_counts_minute",
                "minute",
                "date_trunc('minute', event_ts, 'UTC')",
            ),
            (
                "event_counts_5min",
                "bucket",
                "date_bin('5 minutes', event_ts, timestamptz '1970-01-01Z')",
            ),
            (
                "event_counts_hour",
                "hour",
                "date_trunc('hour', event_ts, 'UTC')",
            ),
        ] {
            let wrong = self
                .count(&format!(
                    "SELECT count(*) AS n
                     FROM (SELECT {bucket} AS {column}, event_type, source, count(*) AS count
                           FROM events GROUP BY 1, 2, 3) AS e
                     FULL JOIN {table} AS r USING ({column}, event_type, source)
                     WHERE e.count IS DISTINCT FROM r.count"
                ))
                .await;
            assert_eq!(wrong, 0, "{table} differs from the events table");
        }
        let counted = self
            .count("SELECT coalesce(sum(count), 0)::int8 AS n FROM event_counts_minute")
            .await;
        assert_eq!(counted, self.events().await);
        assert!(counted > 0);
        // The users table and the lag histogram, likewise.
        let wrong = self
            .count(
                "SELECT count(*) AS n
                 FROM (SELECT user_id, min(event_ts) AS first_seen,
                              date_trunc('hour', max(event_ts), 'UTC') AS last_hour
                       FROM events GROUP BY 1) AS e
                 FULL JOIN users AS u USING (user_id)
                 WHERE (e.first_seen, e.last_hour) IS DISTINCT FROM (u.first_seen, u.last_hour)",
            )
            .await;
        assert_eq!(wrong, 0, "users differs from the events table");
        let wrong = self
            .count(
                "SELECT count(*) AS n
                 FROM (SELECT date_trunc('hour', event_ts, 'UTC') AS hour, count(*) AS count
                       FROM events GROUP BY 1) AS e
                 FULL JOIN (SELECT hour, sum(count) AS count FROM ingest_lag_hour GROUP BY 1) AS l
                   USING (hour)
                 WHERE e.count IS DISTINCT FROM l.count",
            )
            .await;
        assert_eq!(wrong, 0, "ingest_lag_hour differs from the events table");
    }

    /// Applies deploy/postgres/dashboards-role.sql as the owner.
    pub async fn apply_dashboards_role(&self) {
        let sql = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/postgres/dashboards-role.sql"),
        )
        .unwrap();
        self.connect().await.batch_execute(&sql).await.unwrap();
    }

    /// A connection to this database as the dashboards role (trust auth).
    pub async fn dashboards_reader(&self) -> AsyncPgConnection {
        let url = self.url.replacen("postgres@", "eventpipe_dashboards@", 1);
        assert_ne!(url, self.url);
        AsyncPgConnection::establish(&url).await.unwrap()
    }

    pub async fn events(&self) -> i64 {
        self.count("SELECT count(*) AS n FROM events").await
    }

    /// Waits until `events` holds `n` rows (and fails if it ever holds more).
    pub async fn wait_for_events(&self, n: i64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let have = self.events().await;
            assert!(have <= n, "{have} rows, more than the {n} expected");
            if have == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{have} of {n} rows after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for `accepted` rows and checks they are `accepted` distinct
    /// events: nothing lost, nothing doubled.
    pub async fn assert_each_stored_once(&self, accepted: i64, within: Duration) {
        self.wait_for_events(accepted, within).await;
        let distinct = self
            .count("SELECT count(DISTINCT event_id) AS n FROM events")
            .await;
        assert_eq!(distinct, accepted);
    }

    /// Runs statements (`;`-separated) in this database.
    pub async fn run_sql(&self, sql: &str) {
        use diesel_async::SimpleAsyncConnection;
        self.connect().await.batch_execute(sql).await.unwrap();
    }

    /// An outage of this database: no new connections, existing ones cut.
    pub async fn go_down(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ))
        .await;
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ))
        .await;
    }

    /// The end of [`TestDb::go_down`]'s outage.
    pub async fn come_back(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ))
        .await;
    }

    /// Runs admin SQL against the server (not this database).
    pub async fn admin(&self, sql: &str) {
        let mut admin = AsyncPgConnection::establish(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        sql_query(sql).execute(&mut admin).await.unwrap();
    }
}

/// A running service and the means to stop it.
pub struct Running {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// An embedded cluster with the events, DLQ and anomalies topics.
pub fn kafka() -> EmbeddedKafka {
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic(EVENTS, 6).unwrap();
    kafka.create_topic(DLQ, 1).unwrap();
    kafka.create_topic(ANOMALIES, 3).unwrap();
    kafka
}

fn lookup(vars: HashMap<String, String>) -> impl Fn(&str) -> Option<String> {
    move |name| vars.get(name).cloned()
}

/// Noon UTC yesterday plus `secs`, as RFC 3339: outside the unusual
/// hours whenever the test runs.
pub fn yesterday_noon_plus(secs: i64) -> String {
    let noon = (chrono::Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    (noon + chrono::Duration::seconds(secs)).to_rfc3339()
}

/// Starts the API against `kafka`.
pub async fn start_api(kafka: &EmbeddedKafka) -> Running {
    let vars = HashMap::from([(
        "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
        kafka.bootstrap_servers(),
    )]);
    let config = eventpipe_api::config::ApiConfig::from_lookup(lookup(vars)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(eventpipe_api::serve(config, listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop: Some(stop),
        task: Some(task),
    }
}

/// The worker's variables for `kafka` and `db`, plus `extra`.
pub fn worker_vars(
    kafka: &EmbeddedKafka,
    db: &TestDb,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut vars = HashMap::from([
        (
            "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
            kafka.bootstrap_servers(),
        ),
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("WORKER_BATCH_WAIT_MS".to_owned(), "50".to_owned()),
        ("WORKER_RETRY_MAX_MS".to_owned(), "500".to_owned()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

/// Starts the worker in this process.
pub async fn start_worker(kafka: &EmbeddedKafka, db: &TestDb, extra: &[(&str, &str)]) -> Running {
    let config =
        eventpipe_worker::config::WorkerConfig::from_lookup(lookup(worker_vars(kafka, db, extra)))
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(eventpipe_worker::serve(config, listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop: Some(stop),
        task: Some(task),
    }
}

/// POSTs a JSON body to the API's `/events`, expecting 202; returns the
/// accepted event ids.
pub async fn post_events(api: &Running, body: &serde_json::Value) -> Vec<String> {
    let response = reqwest::Client::new()
        .post(api.url("/events"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let receipt: serde_json::Value = response.json().await.unwrap();
    receipt["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the API answers `/ready`.
pub async fn wait_ready(service: &Running) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(service.url("/ready")).await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{} not ready", service.base);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sum over partitions of the offsets the worker's group has committed.
pub fn committed(kafka: &EmbeddedKafka) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", "eventpipe-worker")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition(EVENTS, p);
    }
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    offsets
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

/// `service`'s `/metrics` text.
pub async fn metrics_text(service: &Running) -> String {
    reqwest::get(service.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series (name and labels, as exposed) in a `/metrics`
/// text, if it is there.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The value of one series (name and labels, as exposed) on `service`'s
/// `/metrics`; 0 when absent.
pub async fn metric(service: &Running, series: &str) -> f64 {
    sample(&metrics_text(service).await, series).unwrap_or(0.0)
}

/// Waits until a metric series reaches `value` (metrics are updated just
/// after the work they count, so a test that saw the work polls for them).
pub async fn wait_for_metric(service: &Running, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = metric(service, series).await;
        if have >= value {
            assert_eq!(have, value, "{series}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {have}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts rounds of 100 events through the API, counting what it accepted.
pub struct EventStream<'a> {
    api: &'a Running,
    users: usize,
    round: usize,
    /// Events the API accepted so far.
    pub accepted: i64,
}

impl<'a> EventStream<'a> {
    /// Events for `users` distinct users, round after round.
    pub fn new(api: &'a Running, users: usize) -> Self {
        EventStream {
            api,
            users,
            round: 0,
            accepted: 0,
        }
    }

    /// Posts one round of 100 events.
    pub async fn post_round(&mut self) {
        self.round += 1;
        let batch: Vec<_> = (0..100)
            .map(|i| {
                serde_json::json!({"user_id": format!("u{}", i % self.users), "type": "click", "payload": {"round": self.round}})
            })
            .collect();
        self.accepted += post_events(self.api, &serde_json::json!(batch)).await.len() as i64;
    }
}

pub fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Event `n` (its id is UUID `n`) as the batch writer takes it.
pub fn event(n: u128, user: &str, kind: &str, source: &str, ts: &str) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::from_u128(n),
        user_id: user.to_owned(),
        event_type: kind.to_owned(),
        source: source.to_owned(),
        event_ts: at(ts),
        timestamp_raw: None,
        received_at: at(ts),
        payload: "{}".to_owned(),
        kafka_partition: 0,
        kafka_offset: n as i64,
    }
}

/// Eight events in [10:00, 11:00) on 2026-11-20, one at 11:00.
pub fn known_events() -> Vec<NewEvent> {
    vec![
        event(1, "a", "login", "web", "2026-11-20T10:00:10Z"),
        event(2, "b", "login", "web", "2026-11-20T10:00:10Z"),
        event(3, "c", "login", "web", "2026-11-20T10:00:10Z"),
        event(4, "a", "purchase", "api", "2026-11-20T10:00:50Z"),
        event(5, "a", "login", "api", "2026-11-20T10:01:30Z"),
        event(6, "b", "login", "api", "2026-11-20T10:01:30Z"),
        event(7, "d", "heartbeat", "device", "2026-11-20T10:05:00Z"),
        event(8, "a", "login", "web", "2026-11-20T10:59:59.999Z"),
        event(9, "a", "login", "web", "2026-11-20T11:00:00Z"),
    ]
}

/// Anomaly rows on the known events: (id, event, user, rule, severity, time).
pub fn insert_known_anomalies() -> String {
    [
        (1, 4, "a", "high_value_purchase", "high", "2026-11-20T10:00:50Z"),
        (2, 5, "a", "repeated_login_failures", "medium", "2026-11-20T10:01:30Z"),
        (3, 6, "b", "repeated_login_failures", "medium", "2026-11-20T10:01:30Z"),
        (4, 9, "a", "unusual_time_activity", "low", "2026-11-20T11:00:00Z"),
    ]
    .map(|(id, event, user, rule, severity, ts)| {
        format!(
            "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
             VALUES ('{}', '{}', '{user}', '{rule}', '{severity}', 'd', '{ts}', '{{\"value\": {id}}}');",
            uuid::Uuid::from_u128(1000 + id),
            uuid::Uuid::from_u128(event)
        )
    })
    .concat()
}
