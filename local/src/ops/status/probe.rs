//! `status`: what it probes (the services, PostgreSQL, Kafka and the
//! workers' group) and the warnings it draws from what it found.

use eventpipe_embedded_kafka::KEEPS_BYTES_PER_PARTITION;
use serde::Serialize;

use crate::ops::context::Target;
use crate::ops::kafka::{Kafka, Retention};

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
    /// How old the oldest message the workers have not committed is, in
    /// seconds (by its timestamp), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unconsumed_age_secs: Option<f64>,
    /// Messages deleted before the workers read them: the committed offset
    /// lies before the oldest offset held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_unread: Option<i64>,
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
    /// For the events topic: what it keeps (DescribeConfigs, or the
    /// embedded cluster's fixed size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Why the retention is not known, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_unknown: Option<String>,
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
    /// Offsets the worker found deleted before it read them, since it
    /// started (`eventpipe_worker_offsets_skipped_total`): accepted events
    /// lost to retention. Absent when the worker's metrics did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_skipped: Option<u64>,
    /// Accepted events at risk or lost: deleted unread, skipped, or older
    /// than half the events topic's `retention.ms`.
    pub warnings: Vec<String>,
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

async fn kafka(target: &Target) -> KafkaStatus {
    let mut status = KafkaStatus {
        bootstrap: target.bootstrap.clone(),
        reachable: false,
        error: None,
        group: target.group_id.clone(),
        topics: Vec::new(),
        dlq_messages: None,
    };
    let read = || -> anyhow::Result<(Kafka, Vec<TopicStatus>)> {
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
                    retention: None,
                    retention_unknown: None,
                });
                continue;
            };
            let committed = if role == "events" {
                kafka.committed(&topic)?
            } else {
                Default::default()
            };
            let mut partitions: Vec<PartitionOffsets> = topic
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
                        // Never below 0: a broker can report a high
                        // watermark below what was read (seen with tansu).
                        lag: (role == "events")
                            .then(|| (p.high - done.unwrap_or(p.low).max(p.low)).max(0)),
                        oldest_unconsumed_age_secs: None,
                        deleted_unread: done.filter(|&c| c < p.low).map(|c| p.low - c),
                    }
                })
                .collect();
            if role == "events" {
                oldest_unconsumed(&kafka, name, &mut partitions)?;
            }
            let lag = (role == "events").then(|| partitions.iter().filter_map(|p| p.lag).sum());
            topics.push(TopicStatus {
                name: name.clone(),
                role,
                exists: true,
                messages: topic.held(),
                lag,
                partitions,
                retention: None,
                retention_unknown: None,
            });
        }
        Ok((kafka, topics))
    };
    match tokio::task::block_in_place(read) {
        Ok((kafka, mut topics)) => {
            status.reachable = true;
            status.dlq_messages = topics
                .iter()
                .find(|t| t.role == "dlq" && t.exists)
                .map(|t| t.messages);
            if let Some(events) = topics.iter_mut().find(|t| t.role == "events" && t.exists) {
                if target.embedded {
                    // The embedded cluster answers no DescribeConfigs; what
                    // it keeps is fixed.
                    events.retention = Some(Retention {
                        ms: Some(-1),
                        bytes: i64::try_from(KEEPS_BYTES_PER_PARTITION).ok(),
                    });
                } else {
                    match kafka.retention(&events.name).await {
                        Ok(retention) => events.retention = Some(retention),
                        Err(e) => events.retention_unknown = Some(format!("{e:#}")),
                    }
                }
            }
            status.topics = topics;
        }
        Err(e) => status.error = Some(format!("{e:#}")),
    }
    status
}

/// Notes, for each partition of the events topic with lag, the age of the
/// oldest message the workers have not committed.
fn oldest_unconsumed(
    kafka: &Kafka,
    topic: &str,
    partitions: &mut [PartitionOffsets],
) -> anyhow::Result<()> {
    let at: Vec<(i32, i64)> = partitions
        .iter()
        .filter(|p| p.lag.unwrap_or(0) > 0)
        .map(|p| (p.partition, p.committed.unwrap_or(p.low).max(p.low)))
        .collect();
    let stamps = kafka.timestamps_at(topic, &at)?;
    let now = chrono::Utc::now().timestamp_millis();
    for p in partitions {
        if let Some(ms) = stamps.get(&p.partition) {
            p.oldest_unconsumed_age_secs = Some((now - ms).max(0) as f64 / 1000.0);
        }
    }
    Ok(())
}

/// What puts accepted events at risk, or says they were lost: messages
/// deleted unread, offsets the worker skipped, unconsumed messages older
/// than half of `retention.ms`.
pub fn warnings(kafka: &KafkaStatus, offsets_skipped: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(skipped) = offsets_skipped.filter(|&n| n > 0) {
        out.push(format!(
            "the worker skipped {skipped} offset(s) since it started: accepted events deleted by retention before it read them (its ERROR log names the ranges)"
        ));
    }
    for topic in kafka.topics.iter().filter(|t| t.role == "events") {
        let keep_ms = topic.retention.and_then(|r| r.ms).filter(|&ms| ms > 0);
        for p in &topic.partitions {
            if let Some(deleted) = p.deleted_unread {
                out.push(format!(
                    "partition {} of {}: {deleted} message(s) deleted before the workers committed them",
                    p.partition, topic.name
                ));
            }
            if let (Some(age), Some(keep_ms)) = (p.oldest_unconsumed_age_secs, keep_ms)
                && age * 1000.0 >= keep_ms as f64 / 2.0
            {
                out.push(format!(
                    "partition {} of {}: the oldest message the workers have not committed is {} old, {:.0}% of retention.ms ({}): at 100% the broker deletes it unread",
                    p.partition,
                    topic.name,
                    human_secs(age),
                    age * 100_000.0 / keep_ms as f64,
                    human_secs(keep_ms as f64 / 1000.0)
                ));
            }
        }
    }
    out
}

/// `secs` in the unit that reads best.
pub(super) fn human_secs(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

/// The worker's count of skipped offsets, from its `/metrics`.
async fn offsets_skipped(http: &reqwest::Client, worker: &str) -> Option<u64> {
    let url = format!("{}/metrics", worker.trim_end_matches('/'));
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with(eventpipe_worker::metrics::OFFSETS_SKIPPED_TOTAL))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(total as u64)
}

/// Asks every part.
pub async fn status(target: &Target) -> Status {
    let http = reqwest::Client::builder()
        .timeout(target.timeout)
        .build()
        .unwrap_or_default();
    let worker = service(&http, &target.worker, "EVENTPIPE_WORKER_URL").await;
    let offsets_skipped = match worker.health.ok {
        true => offsets_skipped(&http, &target.worker).await,
        false => None,
    };
    let kafka = kafka(target).await;
    Status {
        api: service(&http, &target.api, "EVENTPIPE_API_URL").await,
        worker,
        database: database(target).await,
        warnings: warnings(&kafka, offsets_skipped),
        kafka,
        offsets_skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(retention_ms: i64, partitions: Vec<PartitionOffsets>) -> KafkaStatus {
        KafkaStatus {
            bootstrap: None,
            reachable: true,
            error: None,
            group: "g".to_owned(),
            topics: vec![TopicStatus {
                name: "events".to_owned(),
                role: "events",
                exists: true,
                messages: 0,
                lag: None,
                partitions,
                retention: Some(Retention {
                    ms: Some(retention_ms),
                    bytes: Some(-1),
                }),
                retention_unknown: None,
            }],
            dlq_messages: None,
        }
    }

    fn partition(age: Option<f64>, deleted: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            partition: 3,
            low: 10,
            high: 20,
            committed: Some(10),
            lag: Some(10),
            oldest_unconsumed_age_secs: age,
            deleted_unread: deleted,
        }
    }

    #[test]
    fn lag_reaching_half_the_retention_is_a_warning() {
        let day = 86_400_000;
        let young = events(day, vec![partition(Some(43_000.0), None)]);
        assert!(warnings(&young, Some(0)).is_empty());
        let old = events(day, vec![partition(Some(43_200.0), None)]);
        let said = warnings(&old, Some(0));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("partition 3 of events"), "{said:?}");
        assert!(said[0].contains("50% of retention.ms (24.0 h)"), "{said:?}");
        // Kept forever: no age is too old.
        assert!(warnings(&events(-1, vec![partition(Some(1e9), None)]), None).is_empty());
    }

    #[test]
    fn losses_are_warnings() {
        let lost = events(-1, vec![partition(None, Some(4))]);
        let said = warnings(&lost, Some(7));
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("skipped 7 offset(s)"), "{said:?}");
        assert!(said[1].contains("4 message(s) deleted"), "{said:?}");
    }
}
