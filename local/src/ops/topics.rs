//! `eventpipe topics` and `eventpipe topics describe TOPIC`.

use std::fmt::Write as _;

use serde::Serialize;

use super::context::{Report, Target};
use super::kafka::{Kafka, Topic};

/// The cluster's topics.
#[derive(Debug, Serialize)]
pub struct Topics {
    /// The bootstrap servers asked.
    pub bootstrap: String,
    /// Each topic, with its partitions.
    pub topics: Vec<Topic>,
}

/// One topic in detail.
#[derive(Debug, Serialize)]
pub struct Described {
    /// The topic.
    #[serde(flatten)]
    pub topic: Topic,
    /// Messages held.
    pub messages: i64,
}

fn connect(target: &Target) -> anyhow::Result<Kafka> {
    Kafka::connect(target, &target.group_id)
}

/// Every topic.
pub fn list(target: &Target) -> anyhow::Result<Topics> {
    tokio::task::block_in_place(|| {
        Ok(Topics {
            bootstrap: target.bootstrap()?.to_owned(),
            topics: connect(target)?.topics()?,
        })
    })
}

/// One topic; an error naming it when the cluster does not have it.
pub fn describe(target: &Target, name: &str) -> anyhow::Result<Described> {
    tokio::task::block_in_place(|| {
        let topic = connect(target)?.topic(name)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no topic {name:?} at {} (`eventpipe topics` lists them)",
                target.bootstrap.as_deref().unwrap_or_default()
            )
        })?;
        Ok(Described {
            messages: topic.held(),
            topic,
        })
    })
}

impl Report for Topics {
    fn human(&self) -> String {
        let mut out = format!("{}\n", self.bootstrap);
        let _ = writeln!(
            out,
            "{:<32} {:>10} {:>14}",
            "topic", "partitions", "messages held"
        );
        for t in &self.topics {
            let _ = writeln!(
                out,
                "{:<32} {:>10} {:>14}",
                t.name,
                t.partitions.len(),
                t.held()
            );
        }
        out
    }
}

impl Report for Described {
    fn human(&self) -> String {
        let t = &self.topic;
        let mut out = format!(
            "{}: {} partition(s), {} message(s) held\n",
            t.name,
            t.partitions.len(),
            self.messages
        );
        let _ = writeln!(
            out,
            "{:>9} {:>7} {:<14} {:<14} {:>12} {:>12}",
            "partition", "leader", "replicas", "in sync", "low", "high"
        );
        let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        for p in &t.partitions {
            let _ = writeln!(
                out,
                "{:>9} {:>7} {:<14} {:<14} {:>12} {:>12}",
                p.partition,
                p.leader,
                ids(&p.replicas),
                ids(&p.isr),
                p.low,
                p.high
            );
        }
        out
    }
}
