//! What the commands ask Kafka: topics with their partitions and offsets,
//! a group's committed offsets, and every message a topic holds. Calls
//! block (librdkafka's metadata and offset requests are synchronous); the
//! commands are short-lived, so they simply wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::context::Target;
use eventpipe_service::kafka::PartitionLag;

/// One partition as the brokers report it.
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    /// Its id.
    pub partition: i32,
    /// The broker leading it.
    pub leader: i32,
    /// The brokers holding it.
    pub replicas: Vec<i32>,
    /// The replicas in sync.
    pub isr: Vec<i32>,
    /// The oldest offset still held.
    pub low: i64,
    /// The offset the next message gets.
    pub high: i64,
}

/// One topic.
#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    /// Its name.
    pub name: String,
    /// Its partitions, by id.
    pub partitions: Vec<Partition>,
}

impl Topic {
    /// Messages held (high minus low watermark, over all partitions).
    pub fn held(&self) -> i64 {
        self.partitions.iter().map(|p| p.high - p.low).sum()
    }
}

/// The longest `status` waits for DescribeConfigs.
const DESCRIBE_WITHIN: Duration = Duration::from_secs(2);

/// What a topic keeps, as the brokers' DescribeConfigs answer says.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Retention {
    /// `retention.ms`: how long messages are kept (-1: forever).
    pub ms: Option<i64>,
    /// `retention.bytes`: how much of each partition is kept (-1: no limit).
    pub bytes: Option<i64>,
}

/// A connection for reading metadata, offsets and messages.
pub struct Kafka {
    consumer: BaseConsumer,
    bootstrap: String,
    extra: Vec<(String, eventpipe_service::settings::Secret<String>)>,
    timeout: Duration,
}

impl Kafka {
    /// Connects as a member of no group; committed offsets are read for
    /// `group` (the workers' group) without joining it. Fails, naming the
    /// variable, when no broker answers.
    pub fn connect(target: &Target, group: &str) -> anyhow::Result<Self> {
        let bootstrap = target.bootstrap()?.to_owned();
        let consumer: BaseConsumer = eventpipe_service::kafka::client_config(
            &bootstrap,
            "eventpipe-ops",
            &target.kafka_extra,
        )
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .context("creating a Kafka client (check KAFKA_CONFIG)")?;
        let kafka = Kafka {
            consumer,
            bootstrap,
            extra: target.kafka_extra.clone(),
            timeout: target.timeout,
        };
        kafka.topics()?;
        Ok(kafka)
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach Kafka at {} (KAFKA_BOOTSTRAP_SERVERS)",
            self.bootstrap
        )
    }

    /// Every topic (Kafka's internal ones left out), by name.
    pub fn topics(&self) -> anyhow::Result<Vec<Topic>> {
        self.read(None)
    }

    /// One topic; `None` when the cluster does not have it.
    pub fn topic(&self, name: &str) -> anyhow::Result<Option<Topic>> {
        Ok(self.read(Some(name))?.into_iter().next())
    }

    fn read(&self, name: Option<&str>) -> anyhow::Result<Vec<Topic>> {
        let metadata = self
            .consumer
            .fetch_metadata(name, self.timeout)
            .with_context(|| self.unreachable())?;
        let mut topics = Vec::new();
        for t in metadata.topics() {
            if t.error().is_some() || t.partitions().is_empty() || t.name().starts_with("__") {
                continue;
            }
            let mut partitions = Vec::new();
            for p in t.partitions() {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(t.name(), p.id(), self.timeout)
                    .with_context(|| format!("reading {}[{}]'s offsets", t.name(), p.id()))?;
                partitions.push(Partition {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                    low,
                    high,
                });
            }
            partitions.sort_by_key(|p| p.partition);
            topics.push(Topic {
                name: t.name().to_owned(),
                partitions,
            });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// The group's committed offset of each partition of `topic` (absent:
    /// nothing committed yet).
    pub fn committed(&self, topic: &Topic) -> anyhow::Result<HashMap<i32, i64>> {
        let mut list = TopicPartitionList::new();
        for p in &topic.partitions {
            list.add_partition(&topic.name, p.partition);
        }
        let committed = self
            .consumer
            .committed_offsets(list, self.timeout)
            .with_context(|| format!("reading the committed offsets of {}", topic.name))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// Where the group this connection was made for stands on every
    /// partition of `topic` (committed offsets against the ends).
    pub fn lags(&self, topic: &str) -> anyhow::Result<Vec<PartitionLag>> {
        eventpipe_service::kafka::group_lag(&self.consumer, topic, self.timeout)
            .with_context(|| format!("reading the group's progress on {topic}"))
    }

    /// The timestamps (epoch ms) of the messages of `topic` at each
    /// (partition, offset) of `at`, as far as they can be read within the
    /// timeout (a message no longer held is left out).
    pub fn timestamps_at(
        &self,
        topic: &str,
        at: &[(i32, i64)],
    ) -> anyhow::Result<HashMap<i32, i64>> {
        let mut found = HashMap::new();
        if at.is_empty() {
            return Ok(found);
        }
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in at {
            list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        self.consumer.assign(&list)?;
        let deadline = Instant::now() + self.timeout;
        while found.len() < at.len() && Instant::now() < deadline {
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100))
                && at.contains(&(m.partition(), m.offset()))
                && let Some(ms) = m.timestamp().to_millis()
            {
                found.insert(m.partition(), ms);
            }
        }
        self.consumer.unassign()?;
        Ok(found)
    }

    /// What `topic` keeps (`retention.ms`, `retention.bytes`), asked with
    /// DescribeConfigs; an error when the brokers do not answer it (the
    /// embedded cluster does not implement it).
    pub async fn retention(&self, topic: &str) -> anyhow::Result<Retention> {
        let admin: AdminClient<DefaultClientContext> =
            eventpipe_service::kafka::client_config(&self.bootstrap, "eventpipe-ops", &self.extra)
                .create()
                .context("creating a Kafka admin client")?;
        // A broker without the API never answers: do not wait the whole
        // timeout for one (a broker with it answers in milliseconds).
        let options = AdminOptions::new().request_timeout(Some(self.timeout.min(DESCRIBE_WITHIN)));
        let results = admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
            .await
            .context("the brokers did not answer DescribeConfigs")?;
        let resource = results
            .into_iter()
            .next()
            .context("the brokers answered DescribeConfigs with nothing")?
            .map_err(|code| anyhow::anyhow!("DescribeConfigs of {topic}: {code}"))?;
        let number = |name: &str| {
            resource
                .get(name)
                .and_then(|e| e.value.as_deref())
                .and_then(|v| v.parse().ok())
        };
        Ok(Retention {
            ms: number("retention.ms"),
            bytes: number("retention.bytes"),
        })
    }

    /// Every message `topic` holds, partition by partition, oldest first.
    pub fn messages(&self, topic: &Topic) -> anyhow::Result<Vec<OwnedMessage>> {
        let mut list = TopicPartitionList::new();
        let mut left: HashMap<i32, i64> = HashMap::new();
        for p in topic.partitions.iter().filter(|p| p.high > p.low) {
            list.add_partition_offset(&topic.name, p.partition, Offset::Offset(p.low))?;
            left.insert(p.partition, p.high);
        }
        if left.is_empty() {
            return Ok(Vec::new());
        }
        self.consumer.assign(&list)?;
        let mut messages = Vec::new();
        let deadline = Instant::now() + self.timeout.max(Duration::from_secs(10));
        while !left.is_empty() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: timed out reading the topic",
                self.unreachable()
            );
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let partition = m.partition();
                    let done = left
                        .get(&partition)
                        .is_some_and(|end| m.offset() + 1 >= *end);
                    messages.push(m.detach());
                    if done {
                        left.remove(&partition);
                    }
                }
                Some(Err(e)) => return Err(e).context(format!("reading {}", topic.name)),
                None => {}
            }
        }
        self.consumer.unassign()?;
        messages.sort_by_key(|m| (m.partition(), m.offset()));
        Ok(messages)
    }
}

/// Every message `topic` (named by variable `var`) holds, read without a
/// consumer group; an error naming the variable when the cluster does not
/// have the topic. Blocks (call from a blocking section).
pub fn read_topic(target: &Target, topic: &str, var: &str) -> anyhow::Result<Vec<OwnedMessage>> {
    let kafka = Kafka::connect(target, "eventpipe-ops")?;
    let found = kafka.topic(topic)?.with_context(|| {
        format!(
            "no topic {topic:?} ({var}) at {}",
            target.bootstrap.as_deref().unwrap_or_default()
        )
    })?;
    kafka.messages(&found)
}

/// A message's headers as text, by name (the last one of a name wins).
pub fn headers(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                    (h.key.to_owned(), value.into_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}
