//! `eventpipe invalid list`: the rejected events the API kept on
//! `API_INVALID_TOPIC`, newest last, with what was wrong with each.

use std::fmt::Write as _;

use anyhow::Context;
use rdkafka::message::Message;
use serde::Serialize;

use super::context::{Flags, Report, Target};
use super::kafka::read_topic;

/// What `invalid list` found.
#[derive(Debug, Serialize)]
pub struct InvalidList {
    /// The topic.
    pub topic: String,
    /// Rejected events it holds.
    pub held: usize,
    /// The last `--limit` of them (each as the API wrote it: `event`,
    /// `index`, `errors`, `problem`, `received_at`, `request_id`,
    /// `key_sha256_prefix`).
    pub events: Vec<serde_json::Value>,
}

/// Reads the topic.
pub fn list(target: &Target, flags: &Flags) -> anyhow::Result<InvalidList> {
    let topic = target.invalid_topic.clone().context(
        "set API_INVALID_TOPIC to the topic the API keeps rejected events on (the API keeps none unless it is set there too)",
    )?;
    tokio::task::block_in_place(|| {
        let messages = read_topic(target, &topic, "API_INVALID_TOPIC")?;
        let held = messages.len();
        let limit = flags.limit.unwrap_or(20);
        let events = messages
            .iter()
            .skip(held.saturating_sub(limit))
            .map(|m| {
                m.payload()
                    .and_then(|v| serde_json::from_slice(v).ok())
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect();
        Ok(InvalidList {
            topic,
            held,
            events,
        })
    })
}

impl Report for InvalidList {
    fn human(&self) -> String {
        let mut out = format!(
            "{}: {} rejected event(s); the last {}:\n",
            self.topic,
            self.held,
            self.events.len()
        );
        for e in &self.events {
            let _ = writeln!(
                out,
                "{} request {} event #{}",
                e["received_at"].as_str().unwrap_or("?"),
                e["request_id"].as_str().unwrap_or("?"),
                e["index"]
            );
            for error in e["errors"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "    {}: {}",
                    error["pointer"].as_str().unwrap_or(""),
                    error["message"].as_str().unwrap_or("")
                );
            }
            let mut event = e["event"].to_string();
            if event.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|i| event.is_char_boundary(*i))
                    .unwrap_or(0);
                event.truncate(cut);
                event.push('…');
            }
            let _ = writeln!(out, "    {event}");
        }
        out
    }
}
