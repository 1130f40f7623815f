//! `status` for people: one line per part, its problems, its warnings.

use std::fmt::Write as _;

use super::probe::{Service, Status, TopicStatus, human_secs};
use crate::ops::context::Report;

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
            && self.warnings.is_empty()
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
                let _ = writeln!(out, "    keeps {}", kept(topic));
                let _ = writeln!(
                    out,
                    "    {:>9} {:>12} {:>12} {:>12} {:>8} {:>12}",
                    "partition", "low", "high", "committed", "lag", "oldest lag"
                );
                let mut past_end = false;
                for p in &topic.partitions {
                    let ahead = p.committed.is_some_and(|c| c > p.high);
                    past_end |= ahead;
                    let committed = p.committed.map_or("-".to_owned(), |c| {
                        format!("{c}{}", if ahead { "*" } else { "" })
                    });
                    let oldest = p
                        .oldest_unconsumed_age_secs
                        .map_or("-".to_owned(), human_secs);
                    let _ = writeln!(
                        out,
                        "    {:>9} {:>12} {:>12} {:>12} {:>8} {:>12}",
                        p.partition,
                        p.low,
                        p.high,
                        committed,
                        p.lag.unwrap_or(0),
                        oldest
                    );
                }
                if past_end {
                    let _ = writeln!(
                        out,
                        "    * committed past the end the broker reports: it under-reports that partition's high watermark (nothing is lost; the lag counts as 0)"
                    );
                }
            }
        }
        match self.offsets_skipped {
            Some(n) => {
                let _ = writeln!(
                    out,
                    "{:<11}{n} offset(s) skipped since the worker started",
                    "Lost"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<11}unknown (the worker's metrics did not answer)",
                    "Lost"
                );
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "WARNING    {warning}");
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

/// What the events topic keeps, in words.
fn kept(topic: &TopicStatus) -> String {
    match (&topic.retention, &topic.retention_unknown) {
        (Some(r), _) => {
            let time = match r.ms {
                Some(ms) if ms > 0 => human_secs(ms as f64 / 1000.0),
                Some(_) => "forever".to_owned(),
                None => "?".to_owned(),
            };
            let size = match r.bytes {
                Some(b) if b > 0 => format!("{b} bytes per partition"),
                Some(_) => "no size limit".to_owned(),
                None => "?".to_owned(),
            };
            format!("retention.ms {time}, retention.bytes {size}")
        }
        (None, Some(why)) => format!("unknown ({why})"),
        (None, None) => "unknown".to_owned(),
    }
}
