//! `dlq list`: the DLQ's messages with why they are there, and whether
//! each was redriven.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use anyhow::Context;
use chrono::{DateTime, Utc};
use eventpipe_contract::kafka::{
    HEADER_DLQ_ERROR, HEADER_DLQ_REASON, HEADER_DLQ_SOURCE_OFFSET, HEADER_DLQ_SOURCE_PARTITION,
    HEADER_DLQ_SOURCE_TOPIC, HEADER_REDRIVEN_FROM,
};
use eventpipe_store::AsyncPgConnection;
use eventpipe_store::redrives::{self, Redriven};
use rdkafka::message::{Message, OwnedMessage};
use serde::Serialize;

use crate::ops::context::{Flags, Report, Target};
use crate::ops::kafka::{headers, read_topic};

/// How many messages `dlq list` shows unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;

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
    pub(super) fn of(message: &OwnedMessage, redriven: &HashMap<(i32, i64), Redriven>) -> Self {
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

pub(super) async fn connect_db(target: &Target) -> anyhow::Result<AsyncPgConnection> {
    eventpipe_store::connect(&target.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (DATABASE_URL), where redrives are recorded",
                target.database()
            )
        })
}

pub(super) async fn recorded(
    conn: &mut AsyncPgConnection,
    topic: &str,
) -> anyhow::Result<HashMap<(i32, i64), Redriven>> {
    redrives::recorded(conn, topic)
        .await
        .context("reading dlq_redrives (is the database migrated? `eventpipe-worker migrate`)")
}

/// Every message of the DLQ.
pub(super) fn read_dlq(target: &Target) -> anyhow::Result<Vec<OwnedMessage>> {
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
