//! `eventpipe dlq list` and `eventpipe dlq redrive`: what the dead-letter
//! topic holds and why, and putting chosen messages back on the events
//! topic once their cause is fixed.
//!
//! A redrive copies the message (key, value, the headers it came with) to
//! the events topic with an `eventpipe-redriven-from` header naming the DLQ
//! message, waits for Kafka's acknowledgement, then records the DLQ
//! message in `dlq_redrives`, so a second run skips it. The event keeps its
//! id, so whatever happens the worker stores it once. If it fails again,
//! the worker puts it back on the DLQ with the header still on it: a new
//! DLQ message that redrive leaves alone (not a loop) unless asked with
//! `--include-redriven`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_contract::kafka::{
    HEADER_DLQ_ERROR, HEADER_DLQ_REASON, HEADER_DLQ_SOURCE_OFFSET, HEADER_DLQ_SOURCE_PARTITION,
    HEADER_DLQ_SOURCE_TOPIC, HEADER_REDRIVEN_FROM, REDRIVE_UNCOMMITTED_BYTES,
};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use super::context::{Flags, Report, Target};
use super::kafka::{Kafka, headers, read_topic};

/// How long a redrive waits for the workers to commit what it sent before
/// giving up (what is recorded stays recorded; run it again).
const WORKERS_WITHIN: Duration = Duration::from_secs(120);

/// What a redrive has sent that the workers have not committed yet, per
/// partition of the events topic: the bytes it may take there and the
/// last offset.
struct Paced<'t> {
    target: &'t Target,
    sent: HashMap<i32, (u64, i64)>,
}

impl<'t> Paced<'t> {
    fn new(target: &'t Target) -> Self {
        Paced {
            target,
            sent: HashMap::new(),
        }
    }

    /// Waits, when `bytes` more could take a partition past
    /// [`REDRIVE_UNCOMMITTED_BYTES`] (where it goes is known only once
    /// sent), until the workers committed everything sent so far.
    async fn room_for(&mut self, bytes: u64) -> anyhow::Result<()> {
        if self
            .sent
            .values()
            .all(|(pending, _)| pending + bytes <= REDRIVE_UNCOMMITTED_BYTES)
        {
            return Ok(());
        }
        let kafka =
            tokio::task::block_in_place(|| Kafka::connect(self.target, &self.target.group_id))?;
        let deadline = std::time::Instant::now() + WORKERS_WITHIN;
        loop {
            let lags = tokio::task::block_in_place(|| kafka.lags(&self.target.events_topic))?;
            self.sent.retain(|partition, (_, last)| {
                lags.iter()
                    .find(|l| l.partition == *partition)
                    .is_none_or(|l| l.committed <= *last)
            });
            if self.sent.is_empty() {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the workers (group {}) did not commit the redriven messages within {} s; what was redriven is recorded, run the redrive again for the rest",
                self.target.group_id,
                WORKERS_WITHIN.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Notes a message of `bytes` acknowledged at `partition`/`offset`.
    fn sent(&mut self, partition: i32, offset: i64, bytes: u64) {
        let entry = self.sent.entry(partition).or_insert((0, offset));
        entry.0 += bytes;
        entry.1 = entry.1.max(offset);
    }
}

/// How many messages `dlq list` shows unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;

/// A redrive recorded in `dlq_redrives`.
#[derive(Debug, Clone, Serialize, diesel::QueryableByName)]
pub struct Redriven {
    /// The DLQ partition.
    #[diesel(sql_type = Integer)]
    #[serde(skip)]
    pub dlq_partition: i32,
    /// The DLQ offset.
    #[diesel(sql_type = BigInt)]
    #[serde(skip)]
    pub dlq_offset: i64,
    /// Where the copy went: partition of the events topic.
    #[diesel(sql_type = Integer)]
    pub to_partition: i32,
    /// And its offset there.
    #[diesel(sql_type = BigInt)]
    pub to_offset: i64,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub redriven_at: DateTime<Utc>,
}

/// One DLQ message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Its partition of the DLQ.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When it was put there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Why (`eventpipe-dlq-reason`).
    pub reason: String,
    /// The error (`eventpipe-dlq-error`).
    pub error: String,
    /// Where the worker read it: `topic/partition/offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its key (the user id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The event id, when the value is JSON with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Set when the message came back after a redrive: the DLQ message it
    /// was redriven from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redriven_from: Option<String>,
    /// Set when this message was redriven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redriven: Option<Redriven>,
}

impl DeadLetter {
    fn of(message: &OwnedMessage, redriven: &HashMap<(i32, i64), Redriven>) -> Self {
        let h = headers(message);
        let get = |name: &str| h.get(name).cloned();
        let source = match (
            get(HEADER_DLQ_SOURCE_TOPIC),
            get(HEADER_DLQ_SOURCE_PARTITION),
            get(HEADER_DLQ_SOURCE_OFFSET),
        ) {
            (Some(t), Some(p), Some(o)) => Some(format!("{t}/{p}/{o}")),
            _ => None,
        };
        let event_id = message
            .payload()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| v.get("event_id")?.as_str().map(str::to_owned));
        DeadLetter {
            partition: message.partition(),
            offset: message.offset(),
            at: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            reason: get(HEADER_DLQ_REASON).unwrap_or_else(|| "(no reason header)".to_owned()),
            error: get(HEADER_DLQ_ERROR).unwrap_or_default(),
            source,
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            event_id,
            redriven_from: get(HEADER_REDRIVEN_FROM),
            redriven: redriven
                .get(&(message.partition(), message.offset()))
                .cloned(),
        }
    }
}

/// What `dlq list` found.
#[derive(Debug, Serialize)]
pub struct DlqList {
    /// The DLQ topic.
    pub topic: String,
    /// Messages it holds.
    pub held: usize,
    /// Of those, by reason.
    pub by_reason: BTreeMap<String, usize>,
    /// The messages matching `--reason`, oldest first, at most `--limit`.
    pub messages: Vec<DeadLetter>,
    /// How many matched (more than shown when over the limit).
    pub matched: usize,
    /// Whether `redriven` could be read (PostgreSQL answered).
    pub redrives_known: bool,
}

async fn connect_db(target: &Target) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(&target.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (DATABASE_URL), where redrives are recorded",
                target.database()
            )
        })
}

async fn recorded(
    conn: &mut AsyncPgConnection,
    topic: &str,
) -> anyhow::Result<HashMap<(i32, i64), Redriven>> {
    let rows: Vec<Redriven> = sql_query(
        "SELECT dlq_partition, dlq_offset, to_partition, to_offset, redriven_at
         FROM dlq_redrives WHERE dlq_topic = $1",
    )
    .bind::<Text, _>(topic)
    .load(conn)
    .await
    .context("reading dlq_redrives (is the database migrated? `eventpipe-worker migrate`)")?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.dlq_partition, r.dlq_offset), r))
        .collect())
}

/// Every message of the DLQ.
fn read_dlq(target: &Target) -> anyhow::Result<Vec<OwnedMessage>> {
    tokio::task::block_in_place(|| read_topic(target, &target.dlq_topic, "KAFKA_DLQ_TOPIC"))
}

/// `dlq list`.
pub async fn list(target: &Target, flags: &Flags) -> anyhow::Result<DlqList> {
    // The redrive column is a courtesy: list works with Kafka alone.
    let redriven = match connect_db(target).await {
        Ok(mut conn) => recorded(&mut conn, &target.dlq_topic).await.ok(),
        Err(_) => None,
    };
    let redrives_known = redriven.is_some();
    let redriven = redriven.unwrap_or_default();
    let all: Vec<DeadLetter> = read_dlq(target)?
        .iter()
        .map(|m| DeadLetter::of(m, &redriven))
        .collect();
    let mut by_reason = BTreeMap::new();
    for m in &all {
        *by_reason.entry(m.reason.clone()).or_insert(0) += 1;
    }
    let matching: Vec<DeadLetter> = all
        .iter()
        .filter(|m| flags.reason.as_ref().is_none_or(|r| *r == m.reason))
        .cloned()
        .collect();
    let matched = matching.len();
    Ok(DlqList {
        topic: target.dlq_topic.clone(),
        held: all.len(),
        by_reason,
        messages: matching
            .into_iter()
            .take(flags.limit.unwrap_or(DEFAULT_LIMIT))
            .collect(),
        matched,
        redrives_known,
    })
}

impl Report for DlqList {
    fn human(&self) -> String {
        let mut out = format!("{}: {} message(s)", self.topic, self.held);
        let reasons: Vec<String> = self
            .by_reason
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if !reasons.is_empty() {
            let _ = write!(out, " ({})", reasons.join(", "));
        }
        let _ = writeln!(out);
        for m in &self.messages {
            let _ = write!(out, "{}/{} {}", m.partition, m.offset, m.reason);
            if let Some(id) = &m.event_id {
                let _ = write!(out, " event {id}");
            }
            if let Some(source) = &m.source {
                let _ = write!(out, " from {source}");
            }
            if let Some(r) = &m.redriven {
                let _ = write!(
                    out,
                    " [redriven {} to {}/{}]",
                    r.redriven_at.to_rfc3339(),
                    r.to_partition,
                    r.to_offset
                );
            }
            if let Some(from) = &m.redriven_from {
                let _ = write!(out, " [failed again after a redrive of {from}]");
            }
            let _ = writeln!(out, "\n    {}", m.error);
        }
        if self.matched > self.messages.len() {
            let _ = writeln!(
                out,
                "({} more; --limit shows more)",
                self.matched - self.messages.len()
            );
        }
        if !self.redrives_known {
            let _ = writeln!(
                out,
                "(PostgreSQL did not answer: which messages were redriven is not shown)"
            );
        }
        out
    }
}

/// What became of one chosen message.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The message.
    #[serde(flatten)]
    pub message: DeadLetter,
    /// `redriven`, `would_redrive` (dry run), `already_redriven`,
    /// `failed_again` (came back after a redrive; `--include-redriven`) or
    /// `too_large` (larger than a redrive sends at once).
    pub action: &'static str,
    /// For `redriven`: where the copy went, `topic/partition/offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// What `dlq redrive` did.
#[derive(Debug, Serialize)]
pub struct RedriveReport {
    /// The DLQ topic.
    pub topic: String,
    /// The events topic the messages went back to.
    pub to_topic: String,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Messages sent back now (or that would be, in a dry run).
    pub redriven: usize,
    /// Each chosen message and what became of it.
    pub messages: Vec<Outcome>,
}

/// The copy's headers: the ones it came with, without the DLQ's own and
/// any earlier redrive mark, plus where it is redriven from.
fn copy_headers(message: &OwnedMessage, from: &str) -> OwnedHeaders {
    let mut copy = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter() {
            if h.key.starts_with("eventpipe-dlq-") || h.key == HEADER_REDRIVEN_FROM {
                continue;
            }
            copy = copy.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    copy.insert(Header {
        key: HEADER_REDRIVEN_FROM,
        value: Some(from),
    })
}

/// `dlq redrive`.
pub async fn redrive(target: &Target, flags: &Flags) -> anyhow::Result<RedriveReport> {
    anyhow::ensure!(
        flags.reason.is_some() || !flags.offsets.is_empty(),
        "choose what to redrive: --reason R (every message with that reason) and/or --offset P:O (repeatable); `eventpipe dlq list` shows them"
    );
    let mut conn = connect_db(target).await?;
    let redriven = recorded(&mut conn, &target.dlq_topic).await?;
    // Read the raw messages (the copies need their bytes), then describe them.
    let raw = read_dlq(target)?;
    for (p, o) in &flags.offsets {
        anyhow::ensure!(
            raw.iter().any(|m| m.partition() == *p && m.offset() == *o),
            "{} holds no message at {p}:{o} (`eventpipe dlq list` shows what it holds)",
            target.dlq_topic
        );
    }
    let chosen: Vec<&OwnedMessage> = raw
        .iter()
        .filter(|m| {
            let at = (m.partition(), m.offset());
            let by_offset = flags.offsets.contains(&at);
            let by_reason = flags
                .reason
                .as_ref()
                .is_some_and(|r| headers(m).get(HEADER_DLQ_REASON).is_some_and(|h| h == r));
            by_offset || by_reason
        })
        .collect();
    let producer: FutureProducer = eventpipe_service::kafka::client_config(
        target.bootstrap()?,
        "eventpipe-redrive",
        &target.kafka_extra,
    )
    .set("acks", "all")
    .set("enable.idempotence", "true")
    // What `Paced` counts a message at assumes no compression.
    .set("compression.type", "none")
    .create()
    .context("creating a Kafka producer (check KAFKA_CONFIG)")?;

    let mut paced = Paced::new(target);
    let mut report = RedriveReport {
        topic: target.dlq_topic.clone(),
        to_topic: target.events_topic.clone(),
        dry_run: flags.dry_run,
        redriven: 0,
        messages: Vec::new(),
    };
    for message in chosen {
        let letter = DeadLetter::of(message, &redriven);
        let from = format!(
            "{}/{}/{}",
            target.dlq_topic, letter.partition, letter.offset
        );
        let headers = copy_headers(message, &from);
        let bytes = eventpipe_service::kafka::stored_bytes_bound(
            message.key().map_or(0, <[u8]>::len),
            message.payload().map_or(0, <[u8]>::len),
            headers
                .iter()
                .map(|h| (h.key.len(), h.value.map_or(0, <[u8]>::len))),
            "none",
        );
        let action = if letter.redriven.is_some() {
            "already_redriven"
        } else if letter.redriven_from.is_some() && !flags.include_redriven {
            "failed_again"
        } else if bytes > REDRIVE_UNCOMMITTED_BYTES {
            "too_large"
        } else if flags.dry_run {
            "would_redrive"
        } else {
            "redriven"
        };
        if action == "would_redrive" {
            report.redriven += 1;
        }
        if action != "redriven" {
            report.messages.push(Outcome {
                message: letter,
                action,
                to: None,
            });
            continue;
        }
        paced.room_for(bytes).await?;
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&target.events_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        let (to_partition, to_offset) = producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| e)
            .with_context(|| {
                format!(
                    "Kafka did not acknowledge the copy of {from} (KAFKA_BOOTSTRAP_SERVERS {}); nothing recorded, run again",
                    target.bootstrap.as_deref().unwrap_or_default()
                )
            })?;
        paced.sent(to_partition, to_offset, bytes);
        let event_id = letter
            .event_id
            .as_deref()
            .and_then(|id| uuid::Uuid::parse_str(id).ok());
        sql_query(
            "INSERT INTO dlq_redrives
               (dlq_topic, dlq_partition, dlq_offset, reason, event_id, to_topic, to_partition, to_offset)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(&target.dlq_topic)
        .bind::<Integer, _>(letter.partition)
        .bind::<BigInt, _>(letter.offset)
        .bind::<Text, _>(&letter.reason)
        .bind::<Nullable<SqlUuid>, _>(event_id)
        .bind::<Text, _>(&target.events_topic)
        .bind::<Integer, _>(to_partition)
        .bind::<BigInt, _>(to_offset)
        .execute(&mut conn)
        .await
        .with_context(|| format!("recording the redrive of {from} (DATABASE_URL)"))?;
        report.redriven += 1;
        report.messages.push(Outcome {
            message: letter,
            action,
            to: Some(format!(
                "{}/{to_partition}/{to_offset}",
                target.events_topic
            )),
        });
    }
    Ok(report)
}

impl Report for RedriveReport {
    fn human(&self) -> String {
        let verb = if self.dry_run {
            "would redrive"
        } else {
            "redrove"
        };
        let mut out = format!(
            "{verb} {} message(s) from {} to {}\n",
            self.redriven, self.topic, self.to_topic
        );
        for o in &self.messages {
            let m = &o.message;
            let what = match o.action {
                "redriven" => format!("redriven to {}", o.to.as_deref().unwrap_or("")),
                "would_redrive" => "would be redriven".to_owned(),
                "already_redriven" => "skipped: redriven before".to_owned(),
                "too_large" => format!(
                    "skipped: larger than a redrive sends at once ({REDRIVE_UNCOMMITTED_BYTES} bytes); the API never accepts such an event"
                ),
                _ => format!(
                    "skipped: failed again after a redrive of {} (--include-redriven sends it again)",
                    m.redriven_from.as_deref().unwrap_or("")
                ),
            };
            let id = m.event_id.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "  {}/{} {} event {id}: {what}",
                m.partition, m.offset, m.reason
            );
        }
        out
    }
}
