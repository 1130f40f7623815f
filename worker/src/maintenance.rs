//! Keeping the time partitions and applying retention: a pass at start-up
//! and then every `WORKER_MAINTENANCE_INTERVAL_SECS`, by one worker of the
//! group at a time (a PostgreSQL advisory lock; the others skip the pass).
//! A pass makes the partitions of the days from the oldest kept (today when
//! nothing is removed) to `PARTITION_AHEAD_DAYS` ahead, then removes what
//! retention says. The `retention` command runs one pass by hand, or prints
//! what it would remove with `--dry-run`.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use eventpipe_store::AsyncPgConnection;
use eventpipe_store::partitions::{self, PARTITIONED, day_start};
use eventpipe_store::redact_url;
use eventpipe_store::retention::{self, Plan, Policy, Removal, Removed};

use crate::config::Maintenance;
use crate::metrics::Metrics;
use crate::state::Worker;

/// The longest wait before a failed pass is tried again.
const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// Partitions made: (table, partition).
    pub created: Vec<(String, String)>,
    /// What retention removed.
    pub removed: Vec<Removed>,
}

/// Whether a pass ran.
#[derive(Debug)]
pub enum Outcome {
    /// It ran to the end.
    Done(Report),
    /// Another process held the maintenance lock.
    Skipped,
}

/// The days a pass gives partitions: from the oldest day `policy` keeps of
/// `parent` (today when it keeps everything: earlier days stay in the
/// default partition) to `ahead_days` after today.
fn prepared_days(
    parent: &str,
    policy: Policy,
    ahead_days: u32,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let kept = match parent {
        "events" => policy.events_days,
        _ => policy.anomalies_days,
    };
    let today = day_start(now);
    let from = kept.map_or(today, |days| {
        day_start(now - chrono::Duration::days(i64::from(days)))
    });
    (
        from,
        today + chrono::Duration::days(i64::from(ahead_days) + 1),
    )
}

async fn connect(database_url: &str) -> anyhow::Result<AsyncPgConnection> {
    eventpipe_store::connect(database_url)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (DATABASE_URL)",
                redact_url(database_url)
            )
        })
}

/// One pass at `now`, on a connection of its own (the lock is the
/// session's); `removed` hears of each removal as it happens.
pub async fn pass(
    database_url: &str,
    settings: Maintenance,
    now: DateTime<Utc>,
    mut removed: impl FnMut(&Removed),
) -> anyhow::Result<Outcome> {
    let mut conn = connect(database_url).await?;
    if !retention::try_lock(&mut conn).await? {
        return Ok(Outcome::Skipped);
    }
    let mut report = Report::default();
    let ran = async {
        for parent in PARTITIONED {
            let (from, to) = prepared_days(parent, settings.retention, settings.ahead_days, now);
            for table in partitions::prepare(&mut conn, parent, from, to, settings.layout).await? {
                report.created.push((parent.to_owned(), table));
            }
        }
        if !settings.retention.keeps_everything() {
            let plan = retention::plan(&mut conn, settings.retention, now).await?;
            let (timeout, grace) = (settings.layout.lock_timeout, settings.reader_grace);
            retention::apply(&mut conn, &plan, timeout, grace, |r| {
                removed(&r);
                report.removed.push(r);
            })
            .await?;
        }
        anyhow::Ok(())
    }
    .await;
    // Released with the connection anyway; explicitly, to say so in time.
    let _ = retention::unlock(&mut conn).await;
    ran.map(|()| Outcome::Done(report))
}

/// Runs a pass now and then every interval (a minute after a failure),
/// counting outcomes in `metrics`.
pub async fn run(worker: Arc<Worker>) {
    let settings = worker.config.maintenance;
    loop {
        let metrics = &worker.metrics;
        let outcome = pass(
            worker.config.database_url.expose(),
            settings,
            Utc::now(),
            |r| count_removed(metrics, r),
        )
        .await;
        let failed = outcome.is_err();
        record(metrics, &outcome);
        // A failed pass (the database down at start-up, say) is tried again
        // within a minute, not an interval later.
        let pause = if failed {
            settings.interval.min(RETRY_AFTER_FAILURE)
        } else {
            settings.interval
        };
        tokio::time::sleep(pause).await;
    }
}

fn count_removed(metrics: &Metrics, removed: &Removed) {
    if removed.partition.is_some() {
        metrics
            .partitions_dropped
            .with_label_values(&[removed.table.as_str()])
            .inc();
    }
    metrics
        .rows_removed
        .with_label_values(&[removed.table.as_str()])
        .inc_by(removed.rows.max(0) as u64);
}

fn record(metrics: &Metrics, outcome: &anyhow::Result<Outcome>) {
    let label = match outcome {
        Ok(Outcome::Done(report)) => {
            for (table, _) in &report.created {
                metrics
                    .partitions_created
                    .with_label_values(&[table.as_str()])
                    .inc();
            }
            metrics.retention_failing.set(0);
            metrics.retention_last_success.set(Utc::now().timestamp());
            "done"
        }
        Ok(Outcome::Skipped) => {
            tracing::debug!("maintenance skipped: another worker holds the lock");
            "skipped"
        }
        Err(error) => {
            metrics.retention_failing.inc();
            tracing::error!(
                error = format!("{error:#}"),
                "maintenance pass failed; retrying at the next interval"
            );
            "failed"
        }
    };
    metrics.retention_runs.with_label_values(&[label]).inc();
}

/// What a pass would remove now, without removing anything.
pub async fn dry_run(database_url: &str, policy: Policy) -> anyhow::Result<Plan> {
    let mut conn = connect(database_url).await?;
    Ok(retention::plan(&mut conn, policy, Utc::now()).await?)
}

/// `plan` for people: the horizons, then each removal.
pub fn describe(policy: Policy, plan: &Plan) -> String {
    if policy.keeps_everything() {
        return "retention is off (no RETENTION_*_DAYS set): nothing is removed\n".to_owned();
    }
    let mut out = String::new();
    for (data, days) in [
        ("events", policy.events_days),
        ("anomalies", policy.anomalies_days),
        ("rollups", policy.rollups_days),
    ] {
        let horizon = plan.horizons.iter().find(|(d, _)| d == data);
        match (days, horizon) {
            (None, _) => out.push_str(&format!("{data}: kept forever\n")),
            (Some(days), Some((_, at))) => out.push_str(&format!(
                "{data}: keep {days} days: remove what is before {}\n",
                at.to_rfc3339()
            )),
            (Some(days), None) => out.push_str(&format!(
                "{data}: keep {days} days: nothing old enough to remove yet\n"
            )),
        }
    }
    if plan.removals.is_empty() {
        out.push_str("nothing to remove\n");
    }
    for removal in &plan.removals {
        out.push_str(&match removal {
            Removal::Partition { partition, .. } => format!(
                "drop partition {} ({} to {}, about {} rows, {} bytes)\n",
                partition.table,
                partition
                    .from
                    .map_or("the beginning".to_owned(), |t| t.to_rfc3339()),
                partition.to.map_or(String::new(), |t| t.to_rfc3339()),
                partition.rows_estimate.max(0),
                partition.bytes
            ),
            Removal::Rows {
                table,
                condition,
                rows,
            } => format!("delete {rows} rows of {table} where {condition}\n"),
        });
    }
    out
}

/// `plan` as JSON.
pub fn plan_json(plan: &Plan) -> serde_json::Value {
    let removals: Vec<serde_json::Value> = plan
        .removals
        .iter()
        .map(|removal| match removal {
            Removal::Partition { parent, partition } => serde_json::json!({
                "action": "drop_partition",
                "table": parent,
                "partition": partition.table,
                "from": partition.from,
                "to": partition.to,
                "rows_estimate": partition.rows_estimate.max(0),
                "bytes": partition.bytes,
            }),
            Removal::Rows {
                table,
                condition,
                rows,
            } => serde_json::json!({
                "action": "delete_rows",
                "table": table,
                "condition": condition,
                "rows": rows,
            }),
        })
        .collect();
    let horizons: serde_json::Map<String, serde_json::Value> = plan
        .horizons
        .iter()
        .map(|(data, at)| (data.clone(), serde_json::json!(at)))
        .collect();
    serde_json::json!({ "complete_from": horizons, "removals": removals })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_made_from_the_oldest_kept_day_to_the_days_ahead() {
        let now: DateTime<Utc> = "2026-12-01T15:30:00Z".parse().unwrap_or_default();
        let day =
            |d: &str| -> DateTime<Utc> { format!("{d}T00:00:00Z").parse().unwrap_or_default() };
        assert_eq!(
            prepared_days("events", Policy::default(), 3, now),
            (day("2026-12-01"), day("2026-12-05"))
        );
        let policy = Policy {
            events_days: Some(30),
            anomalies_days: Some(90),
            rollups_days: None,
        };
        assert_eq!(
            prepared_days("events", policy, 0, now),
            (day("2026-11-01"), day("2026-12-02"))
        );
        assert_eq!(
            prepared_days("anomalies", policy, 0, now).0,
            day("2026-09-02")
        );
    }
}
