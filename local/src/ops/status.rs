//! `eventpipe status`: is every part up, and how far behind are the workers?

use std::fmt::Write as _;

use serde::Serialize;

use super::context::{Report, Target};
use super::kafka::Kafka;

/// One HTTP probe.
#[derive(Debug, Serialize)]
pub struct Probe {
    /// 2xx.
    pub ok: bool,
    /// The status code, when the service answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The answer (JSON), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A service's health and readiness.
#[derive(Debug, Serialize)]
pub struct Service {
    /// Its base URL.
    pub url: String,
    /// `GET /health`.
    pub health: Probe,
    /// `GET /ready`.
    pub ready: Probe,
}

/// PostgreSQL.
#[derive(Debug, Serialize)]
pub struct Database {
    /// The URL, without its password.
    pub url: String,
    /// It answered.
    pub reachable: bool,
    /// Every table and view this version needs is there.
    pub migrated: bool,
    /// What is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One partition's offsets.
#[derive(Debug, Serialize)]
pub struct PartitionOffsets {
    /// Its id.
    pub partition: i32,
    /// The oldest offset held.
    pub low: i64,
    /// The next offset.
    pub high: i64,
    /// The workers' committed offset (absent before their first commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed: Option<i64>,
    /// Messages not yet committed by the workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
}

/// One of the pipeline's topics.
#[derive(Debug, Serialize)]
pub struct TopicStatus {
    /// Its name.
    pub name: String,
    /// What it is for: events, dlq, anomalies.
    pub role: &'static str,
    /// The cluster has it.
    pub exists: bool,
    /// Messages held.
    pub messages: i64,
    /// For the events topic: the workers' lag over all partitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Its partitions.
    pub partitions: Vec<PartitionOffsets>,
}

/// Kafka.
#[derive(Debug, Serialize)]
pub struct KafkaStatus {
    /// The bootstrap servers asked.
    pub bootstrap: Option<String>,
    /// A broker answered.
    pub reachable: bool,
    /// What is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The workers' consumer group.
    pub group: String,
    /// The events, DLQ and anomalies topics.
    pub topics: Vec<TopicStatus>,
    /// Messages the DLQ holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_messages: Option<i64>,
}

/// Everything `status` found.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The API.
    pub api: Service,
    /// The worker.
    pub worker: Service,
    /// PostgreSQL.
    pub database: Database,
    /// Kafka.
    pub kafka: KafkaStatus,
}

async fn probe(http: &reqwest::Client, url: &str, var: &str) -> Probe {
    match http.get(url).send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.json().await.ok();
            Probe {
                ok: status.is_success(),
                status: Some(status.as_u16()),
                body,
                error: None,
            }
        }
        Err(e) => Probe {
            ok: false,
            status: None,
            body: None,
            error: Some(format!("cannot reach {url} ({var}): {e}")),
        },
    }
}

async fn service(http: &reqwest::Client, base: &str, var: &str) -> Service {
    let base = base.trim_end_matches('/');
    Service {
        url: base.to_owned(),
        health: probe(http, &format!("{base}/health"), var).await,
        ready: probe(http, &format!("{base}/ready"), var).await,
    }
}

async fn database(target: &Target) -> Database {
    let url = target.database();
    match eventpipe_store::check_schema(&target.database_url).await {
        Ok(()) => Database {
            url,
            reachable: true,
            migrated: true,
            error: None,
        },
        Err(e) => {
            let text = format!("{e:#}");
            let reachable = !text.contains("cannot reach PostgreSQL");
            Database {
                url,
                reachable,
                migrated: false,
                error: Some(text),
            }
        }
    }
}

fn kafka(target: &Target) -> KafkaStatus {
    let mut status = KafkaStatus {
        bootstrap: target.bootstrap.clone(),
        reachable: false,
        error: None,
        group: target.group_id.clone(),
        topics: Vec::new(),
        dlq_messages: None,
    };
    let read = || -> anyhow::Result<Vec<TopicStatus>> {
        let kafka = Kafka::connect(target, &target.group_id)?;
        let mut topics = Vec::new();
        for (name, role) in [
            (&target.events_topic, "events"),
            (&target.dlq_topic, "dlq"),
            (&target.anomalies_topic, "anomalies"),
        ] {
            let Some(topic) = kafka.topic(name)? else {
                topics.push(TopicStatus {
                    name: name.clone(),
                    role,
                    exists: false,
                    messages: 0,
                    lag: None,
                    partitions: Vec::new(),
                });
                continue;
            };
            let committed = if role == "events" {
                kafka.committed(&topic)?
            } else {
                Default::default()
            };
            let partitions: Vec<PartitionOffsets> = topic
                .partitions
                .iter()
                .map(|p| {
                    let done = committed.get(&p.partition).copied();
                    PartitionOffsets {
                        partition: p.partition,
                        low: p.low,
                        high: p.high,
                        committed: done,
                        // Nothing committed yet: all that is held is to do.
                        lag: (role == "events").then(|| p.high - done.unwrap_or(p.low).max(p.low)),
                    }
                })
                .collect();
            let lag = (role == "events").then(|| partitions.iter().filter_map(|p| p.lag).sum());
            topics.push(TopicStatus {
                name: name.clone(),
                role,
                exists: true,
                messages: topic.held(),
                lag,
                partitions,
            });
        }
        Ok(topics)
    };
    match tokio::task::block_in_place(read) {
        Ok(topics) => {
            status.reachable = true;
            status.dlq_messages = topics
                .iter()
                .find(|t| t.role == "dlq" && t.exists)
                .map(|t| t.messages);
            status.topics = topics;
        }
        Err(e) => status.error = Some(format!("{e:#}")),
    }
    status
}

/// Asks every part.
pub async fn status(target: &Target) -> Status {
    let http = reqwest::Client::builder()
        .timeout(target.timeout)
        .build()
        .unwrap_or_default();
    Status {
        api: service(&http, &target.api, "EVENTPIPE_API_URL").await,
        worker: service(&http, &target.worker, "EVENTPIPE_WORKER_URL").await,
        database: database(target).await,
        kafka: kafka(target),
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILING" }
}

fn service_line(out: &mut String, name: &str, s: &Service) {
    let _ = write!(out, "{name:<11}{}  ", s.url);
    match (&s.health.error, &s.ready.error) {
        (Some(e), _) | (None, Some(e)) => {
            let _ = writeln!(out, "DOWN: {e}");
        }
        (None, None) => {
            let ready = s
                .ready
                .status
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "health {}, ready {}{}",
                mark(s.health.ok),
                mark(s.ready.ok),
                if s.ready.ok { String::new() } else { ready }
            );
            if !s.ready.ok
                && let Some(body) = &s.ready.body
            {
                let _ = writeln!(out, "{:<11}{body}", "");
            }
        }
    }
}

impl Report for Status {
    fn ok(&self) -> bool {
        self.api.ready.ok
            && self.worker.ready.ok
            && self.database.migrated
            && self.kafka.reachable
            && self.kafka.topics.iter().all(|t| t.exists)
    }

    fn human(&self) -> String {
        let mut out = String::new();
        service_line(&mut out, "API", &self.api);
        service_line(&mut out, "worker", &self.worker);
        let _ = write!(out, "{:<11}{}  ", "PostgreSQL", self.database.url);
        let _ = match &self.database.error {
            None => writeln!(out, "reachable, migrated"),
            Some(e) => writeln!(out, "{}", e.replace('\n', " ")),
        };
        let bootstrap = self.kafka.bootstrap.as_deref().unwrap_or("(not set)");
        let _ = write!(out, "{:<11}{bootstrap}  ", "Kafka");
        let _ = match &self.kafka.error {
            None => writeln!(out, "reachable"),
            Some(e) => writeln!(out, "DOWN: {e}"),
        };
        for topic in &self.kafka.topics {
            if !topic.exists {
                let _ = writeln!(out, "  topic {:<14}MISSING", topic.name);
                continue;
            }
            let _ = write!(
                out,
                "  topic {:<14}{} partition(s), {} message(s) held",
                topic.name,
                topic.partitions.len(),
                topic.messages
            );
            if let Some(lag) = topic.lag {
                let _ = write!(out, "; group {} lag {lag}", self.kafka.group);
            }
            let _ = writeln!(out);
            if topic.role == "events" {
                let _ = writeln!(
                    out,
                    "    {:>9} {:>12} {:>12} {:>12} {:>8}",
                    "partition", "low", "high", "committed", "lag"
                );
                for p in &topic.partitions {
                    let committed = p.committed.map_or("-".to_owned(), |c| c.to_string());
                    let _ = writeln!(
                        out,
                        "    {:>9} {:>12} {:>12} {:>12} {:>8}",
                        p.partition,
                        p.low,
                        p.high,
                        committed,
                        p.lag.unwrap_or(0)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "{}",
            if self.ok() {
                "all ok"
            } else {
                "something is down or missing (see above)"
            }
        );
        out
    }
}
