//! The harness every API test uses: the real server on port 0, connected to
//! its own embedded Kafka cluster, and a real consumer reading the topic back.
#![allow(dead_code)] // each test file uses a different part of it

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eventpipe_api::config::ApiConfig;
use eventpipe_embedded_kafka::EmbeddedKafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOPIC: &str = "events";
pub const PARTITIONS: i32 = 6;

/// A running API and the cluster behind it.
pub struct TestApi {
    pub base: String,
    pub kafka: EmbeddedKafka,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// One message read back from the events topic.
#[derive(Debug)]
pub struct Received {
    pub key: String,
    pub value: serde_json::Value,
    pub headers: HashMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the API with `vars` on top of the test defaults.
    pub async fn start_with(vars: &[(&str, &str)]) -> Self {
        let kafka = EmbeddedKafka::start(1).unwrap();
        kafka.create_topic(TOPIC, PARTITIONS).unwrap();
        // The mock cluster does not take CreateTopics: make the topic for
        // rejected events here when a test asks for one.
        if let Some((_, topic)) = vars.iter().find(|(k, _)| *k == "API_INVALID_TOPIC") {
            kafka.create_topic(topic, 1).unwrap();
        }
        let mut env: HashMap<String, String> = HashMap::from([
            (
                "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
                kafka.bootstrap_servers(),
            ),
            ("KAFKA_EVENTS_TOPIC".to_owned(), TOPIC.to_owned()),
            ("KAFKA_LINGER_MS".to_owned(), "1".to_owned()),
        ]);
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = ApiConfig::from_lookup(|name| env.get(name).cloned()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(eventpipe_api::serve(config, listener, async {
            let _ = stopped.await;
        }));
        let mut api = TestApi {
            base,
            kafka,
            http: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while api.server.as_ref().is_some_and(|s| !s.is_finished()) && Instant::now() < deadline {
            if let Ok(r) = api.http.get(api.url("/ready")).send().await
                && r.status() == 200
            {
                return api;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Say why the server stopped, if it did.
        if let Some(server) = api.server.take()
            && server.is_finished()
        {
            panic!("the API stopped at start-up: {:?}", server.await.unwrap());
        }
        panic!("API not ready within 20s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Polls `/ready` until it answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = self.http.get(self.url("/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "API not ready within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// POSTs `body` to `/events` as JSON.
    pub async fn post_json(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post(body.to_string(), "application/json").await
    }

    /// POSTs raw `body` with `content_type` to `/events`.
    pub async fn post(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/events"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Messages on the topic, counted from the partitions' watermarks: what
    /// Kafka holds, whether or not anyone reads it.
    pub fn topic_message_count(&self) -> i64 {
        let consumer = self.consumer();
        (0..PARTITIONS)
            .map(|p| {
                let (low, high) = consumer
                    .fetch_watermarks(TOPIC, p, Duration::from_secs(5))
                    .unwrap();
                high - low
            })
            .sum()
    }

    fn consumer(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.kafka.bootstrap_servers())
            .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    }

    /// The first `n` messages of `topic`'s `partitions` from the start,
    /// waiting for them.
    fn read(&self, topic: &str, partitions: i32, n: usize) -> Vec<OwnedMessage> {
        let consumer = self.consumer();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "read {} of {n} messages",
                out.len()
            );
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                out.push(message.unwrap().detach());
            }
        }
        out
    }

    /// Reads every message on the topic from the start, expecting `n`.
    pub fn read_topic(&self, n: usize) -> Vec<Received> {
        self.read(TOPIC, PARTITIONS, n)
            .into_iter()
            .map(|m| {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8(h.value.unwrap_or_default().to_vec())
                                        .unwrap(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Received {
                    key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                    value: serde_json::from_slice(m.payload().unwrap()).unwrap(),
                    headers,
                    partition: m.partition(),
                    offset: m.offset(),
                }
            })
            .collect()
    }

    /// The values of the first `n` messages of one-partition `topic`,
    /// waiting for them.
    pub fn read_values(&self, topic: &str, n: usize) -> Vec<serde_json::Value> {
        self.read(topic, 1, n)
            .iter()
            .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
            .collect()
    }

    /// Messages one-partition `topic` holds (0 when it does not exist).
    pub fn held(&self, topic: &str) -> i64 {
        self.consumer()
            .fetch_watermarks(topic, 0, Duration::from_secs(5))
            .map_or(0, |(low, high)| high - low)
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }

    /// Signals shutdown without waiting.
    pub fn begin_stop(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().unwrap()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

/// The value of one series (name and labels, as exposed) in a `/metrics`
/// text, if it is there.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// A minimal valid event.
pub fn event(user: &str, event_type: &str) -> serde_json::Value {
    serde_json::json!({"user_id": user, "type": event_type})
}
