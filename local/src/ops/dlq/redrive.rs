//! `dlq redrive`: DLQ messages back on the events topic, each once, paced
//! so the workers keep up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use eventpipe_contract::kafka::{
    HEADER_DLQ_REASON, HEADER_REDRIVEN_FROM, REDRIVE_UNCOMMITTED_BYTES,
};
use eventpipe_store::redrives::{self, NewRedrive};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use super::letters::{DeadLetter, connect_db, read_dlq, recorded};
use crate::ops::context::{Flags, Report, Target};
use crate::ops::kafka::{Kafka, headers};

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
        let recorded = NewRedrive {
            dlq: (&target.dlq_topic, letter.partition, letter.offset),
            reason: &letter.reason,
            event_id,
            to: (&target.events_topic, to_partition, to_offset),
        };
        redrives::record(&mut conn, &recorded)
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
