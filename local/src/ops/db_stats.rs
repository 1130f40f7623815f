//! `eventpipe db-stats`: what the database holds and how fresh it is.

use std::fmt::Write as _;

use anyhow::Context;
use chrono::{DateTime, Utc};
use eventpipe_store::stats::{self, Newest, RuleCount, Table};
use serde::Serialize;

use super::context::{Report, Target};

/// Everything `db-stats` found.
#[derive(Debug, Serialize)]
pub struct DbStats {
    /// The database (without its password).
    pub database: String,
    /// Whether `rows` were counted (`--exact`) or are statistics.
    pub exact: bool,
    /// Every table and partition, partitioned tables first.
    pub tables: Vec<Table>,
    /// The event with the latest time up to now (events timestamped in the
    /// future are not "newest").
    pub newest_event: Newest,
    /// Anomalies detected in the last hour, by rule (among events of the
    /// last 7 days: older partitions are not read).
    pub anomalies_last_hour: Vec<RuleCount>,
}

/// Reads the statistics (`exact`: counts every table's rows).
pub async fn db_stats(target: &Target, exact: bool) -> anyhow::Result<DbStats> {
    let mut conn = eventpipe_store::connect(&target.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (DATABASE_URL)",
                target.database()
            )
        })?;
    let tables = stats::tables(&mut conn, exact).await?;
    let newest_event = stats::newest(&mut conn).await.context(
        "reading the newest event (is the database migrated? `eventpipe-worker migrate`)",
    )?;
    let anomalies_last_hour = stats::anomalies_last_hour(&mut conn).await?;
    Ok(DbStats {
        database: target.database(),
        exact,
        tables,
        newest_event,
        anomalies_last_hour,
    })
}

/// Bytes for people.
fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Report for DbStats {
    fn human(&self) -> String {
        let mut out = String::new();
        let how = if self.exact { "counted" } else { "statistics" };
        let _ = writeln!(out, "{}", self.database);
        let _ = writeln!(
            out,
            "{:<36} {:>12} {:>10}",
            "table",
            format!("rows ({how})"),
            "size"
        );
        for t in &self.tables {
            let name = if t.partition_of.is_empty() {
                t.name.clone()
            } else {
                format!("  {}", t.name)
            };
            let _ = writeln!(out, "{name:<36} {:>12} {:>10}", t.rows, size(t.bytes));
        }
        let at = |t: Option<DateTime<Utc>>| t.map_or("-".to_owned(), |t| t.to_rfc3339());
        let _ = writeln!(
            out,
            "newest event: {} (received {}, stored {})",
            at(self.newest_event.event_ts),
            at(self.newest_event.received_at),
            at(self.newest_event.stored_at)
        );
        if self.anomalies_last_hour.is_empty() {
            let _ = writeln!(out, "anomalies in the last hour: none");
        } else {
            let _ = writeln!(out, "anomalies in the last hour, by rule:");
            for r in &self.anomalies_last_hour {
                let _ = writeln!(out, "  {:<34} {:>12}", r.rule, r.anomalies);
            }
        }
        out
    }
}
