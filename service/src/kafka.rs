//! Kafka client plumbing every service shares: the base client settings
//! and librdkafka's logs and errors routed into `tracing`. Each service
//! keeps its own module for what it does with Kafka.

use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::telemetry::{TRACEPARENT, TRACESTATE, TraceHeaders};

/// `headers` plus the W3C trace context headers of `trace`, when given.
pub fn with_trace(headers: OwnedHeaders, trace: Option<&TraceHeaders>) -> OwnedHeaders {
    let Some(trace) = trace else {
        return headers;
    };
    let headers = headers.insert(Header {
        key: TRACEPARENT,
        value: Some(&trace.traceparent),
    });
    match &trace.tracestate {
        Some(state) => headers.insert(Header {
            key: TRACESTATE,
            value: Some(state),
        }),
        None => headers,
    }
}

/// Settings every eventpipe client starts from: the brokers, a client id,
/// no topic auto-creation (topics are created on purpose with their
/// partition counts, never as a side effect of a metadata request), quick
/// reconnects, then the operator's extra properties (`KAFKA_CONFIG`). What a
/// service sets afterwards for its guarantees (`acks=all`, idempotence,
/// manual offset commits) cannot be overridden that way.
pub fn client_config(
    bootstrap_servers: &str,
    client_id: &str,
    extra: &[(String, crate::settings::Secret<String>)],
) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", client_id)
        .set("allow.auto.create.topics", "false")
        // Come back within a second of a broker returning, not ten.
        .set("reconnect.backoff.max.ms", "1000");
    for (key, value) in extra {
        client.set(key, value.expose());
    }
    client
}

/// Logs a librdkafka log line through `tracing`.
pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        _ => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// Logs a client-level Kafka error through `tracing`.
pub fn error(error: &KafkaError, reason: &str) {
    tracing::warn!(error = %error, "kafka client error: {reason}");
}

/// Asks for `topic`'s metadata through `client` until a broker the
/// cluster named (not a bootstrap address) answers, for up to `within`.
/// Blocks. An idempotent producer asks for its producer id on each
/// metadata answer, but only from such a broker: none is connected yet
/// when the first answer (the bootstrap's) arrives, and librdkafka then
/// retries only 500 ms later, which the first send would wait for. Called
/// at start-up, this has the id asked for as soon as a broker is up (a
/// Lambda cold start's first request, measured: 510 ms before, a few
/// after).
pub fn await_brokers<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    within: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero()
            || matches!(client.fetch_metadata(Some(topic), left).map(|m| m.orig_broker_id()), Ok(id) if id >= 0)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// What a look at the cluster found, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A broker answered and knows every topic asked about.
    Answers,
    /// A broker answered but does not know these topics: deleted, or a
    /// broker that keeps nothing across a restart (an in-memory one).
    Missing(Vec<String>),
    /// No broker answered.
    Down,
}

/// The last look at the cluster, shared by a service's probe and its
/// `/ready`: whether Kafka is usable, and if not, why when more is known
/// than that no broker answered.
#[derive(Debug)]
pub struct KafkaStatus {
    up: std::sync::atomic::AtomicBool,
    problem: std::sync::Mutex<Option<String>>,
}

impl KafkaStatus {
    /// Starts as `up`.
    pub fn new(up: bool) -> Self {
        KafkaStatus {
            up: std::sync::atomic::AtomicBool::new(up),
            problem: std::sync::Mutex::new(None),
        }
    }

    /// Records a look; whether Kafka was usable before it.
    pub fn set(&self, up: bool, problem: Option<String>) -> bool {
        *self
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
        self.up.swap(up, std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the last look found Kafka usable.
    pub fn up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why it is not, when known (a missing topic that could not be made).
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// [`Reach`] from a metadata answer: which of `topics` it lacks (a topic
/// with an error or no partitions counts as missing).
pub fn reach(metadata: Result<rdkafka::metadata::Metadata, KafkaError>, topics: &[&str]) -> Reach {
    let Ok(metadata) = metadata else {
        return Reach::Down;
    };
    let missing: Vec<String> = topics
        .iter()
        .filter(|name| {
            !metadata
                .topics()
                .iter()
                .any(|t| t.name() == **name && t.error().is_none() && !t.partitions().is_empty())
        })
        .map(|name| (*name).to_owned())
        .collect();
    if missing.is_empty() {
        Reach::Answers
    } else {
        Reach::Missing(missing)
    }
}

/// Where a consumer group stands on one partition, from the broker: what
/// the group committed against the partition's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// Where the group resumes: its committed offset, or the log start
    /// when it committed none (or the log no longer starts that early).
    pub committed: i64,
    /// The offset the partition's next message gets.
    pub high: i64,
    /// Messages from `committed` to `high` (0 for an empty or fully
    /// consumed partition).
    pub lag: i64,
}

/// The group's lag on every partition of `topic`, from the broker: the
/// committed offsets of the group `client` was made with (`group.id`)
/// against the partitions' ends, whichever member holds them, or none.
/// `client` need not join the group, so this answers during rebalances.
/// Blocks.
pub fn group_lag<C: ConsumerContext>(
    client: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), Timeout::After(timeout))?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    let mut wanted = TopicPartitionList::new();
    for partition in 0..count {
        wanted.add_partition(topic, i32::try_from(partition).unwrap_or(i32::MAX));
    }
    let committed = client.committed_offsets(wanted, Timeout::After(timeout))?;
    let mut lags = Vec::with_capacity(count);
    for element in committed.elements() {
        let partition = element.partition();
        let (low, high) = client.fetch_watermarks(topic, partition, Timeout::After(timeout))?;
        // Nothing committed: the group would start at the log's start.
        let committed = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        lags.push(PartitionLag {
            partition,
            committed,
            high,
            lag: (high - committed).max(0),
        });
    }
    Ok(lags)
}

/// Bytes of a record batch's header: a partition's log stores records in
/// such batches, and at worst a batch holds a single record.
const BATCH_HEADER_BYTES: u64 = 61;
/// The most a record's own framing takes: its length, attributes,
/// timestamp and offset deltas, key and value lengths and header count.
const RECORD_FRAMING_BYTES: u64 = 36;
/// The most a header's two lengths take.
const HEADER_FRAMING_BYTES: u64 = 10;

/// The most one record (its `key`, `value` and headers, given as key and
/// value lengths) can take in a partition's log when produced with
/// `compression` (librdkafka's `compression.type`): a batch header of its
/// own, its framing, its bytes, and what compression can add to input it
/// cannot shrink (snappy less than a sixth plus 64 bytes; lz4, zstd and
/// gzip less than a 64th plus 64). A batch's records are compressed
/// together, and these bounds add up, so the sum over a batch's records
/// bounds the batch. The broker stores batches as produced (a topic whose
/// `compression.type` differs from the producer's recompresses them).
pub fn stored_bytes_bound(
    key: usize,
    value: usize,
    headers: impl IntoIterator<Item = (usize, usize)>,
    compression: &str,
) -> u64 {
    let mut records = RECORD_FRAMING_BYTES + key as u64 + value as u64;
    for (name, text) in headers {
        records += HEADER_FRAMING_BYTES + name as u64 + text as u64;
    }
    let compressed = match compression {
        "none" => records,
        "snappy" => records + records / 6 + 64,
        _ => records + records / 64 + 64,
    };
    BATCH_HEADER_BYTES + compressed
}

/// A topic a service needs: its name, the variable naming it, and the
/// partitions to create it with.
#[derive(Debug, Clone)]
pub struct NeededTopic<'a> {
    /// The topic.
    pub name: &'a str,
    /// The variable that names it, for messages.
    pub var: &'static str,
    /// Partitions when created.
    pub partitions: i32,
}

/// Makes sure every topic of `needed` exists, creating the missing ones
/// (with `replication`, -1: the brokers' default) when `create` allows,
/// through clients made from `config` (the service's, so TLS and SASL
/// apply). Their partition counts, in order. Fails naming the variable to
/// fix when Kafka does not answer within `timeout` or a topic cannot be
/// had (some brokers refuse CreateTopics: ACLs, managed services).
pub async fn ensure_topics(
    config: &ClientConfig,
    needed: &[NeededTopic<'_>],
    replication: i32,
    create: bool,
    timeout: Duration,
    bootstrap: &str,
) -> anyhow::Result<Vec<usize>> {
    use anyhow::Context as _;
    let unreachable = || format!("cannot reach Kafka at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS)");
    let client: std::sync::Arc<BaseConsumer> = std::sync::Arc::new(
        config
            .create()
            .context("creating a Kafka client (check KAFKA_CONFIG)")?,
    );
    let counts = |client: std::sync::Arc<BaseConsumer>| async move {
        tokio::task::spawn_blocking(move || {
            client
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .map(|t| (t.name().to_owned(), t.partitions().len()))
                        .collect::<std::collections::HashMap<String, usize>>()
                })
        })
        .await
    };
    let mut found = counts(client.clone()).await?.with_context(unreachable)?;
    let missing: Vec<&NeededTopic<'_>> = needed
        .iter()
        .filter(|t| found.get(t.name).is_none_or(|&n| n == 0))
        .collect();
    if !missing.is_empty() && create {
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            config.create().context("creating the Kafka admin client")?;
        let topics: Vec<rdkafka::admin::NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                rdkafka::admin::NewTopic::new(
                    t.name,
                    t.partitions,
                    rdkafka::admin::TopicReplication::Fixed(replication),
                )
            })
            .collect();
        let options = rdkafka::admin::AdminOptions::new().request_timeout(Some(timeout));
        match admin.create_topics(&topics, &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(name) => tracing::info!(topic = %name, "created topic"),
                        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => {
                            tracing::warn!(topic = %name, error = %code, "could not create topic")
                        }
                    }
                }
            }
            // Some brokers refuse the CreateTopics API (ACLs, managed
            // services); the second look decides.
            Err(e) => tracing::warn!(error = %e, "could not create topics"),
        }
        // A new topic takes a moment to show in the brokers' metadata.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            found = counts(client.clone()).await?.with_context(unreachable)?;
            let all = missing
                .iter()
                .all(|t| found.get(t.name).is_some_and(|&n| n > 0));
            if all || std::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    needed
        .iter()
        .map(|t| match found.get(t.name) {
            Some(&n) if n > 0 => Ok(n),
            _ => Err(anyhow::anyhow!(
                "topic {:?} ({}) does not exist in Kafka at {bootstrap} and could not be created (KAFKA_CREATE_TOPICS); create it",
                t.name,
                t.var
            )),
        })
        .collect()
}
