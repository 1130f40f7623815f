//! Retention: what is older than each kind of data's retention goes, raw
//! events and anomalies by dropping whole partitions, rollups (a bounded
//! number of rows per day, whatever the event rate) by deleting rows in
//! small batches.
//!
//! Each kind's horizon is the instant before which its data is removed: a
//! UTC midnight at most its retention ago, and never inside a partition
//! that is kept, so everything from the horizon on stays whole. The
//! horizons are written to the `retention` table before anything is
//! removed; readers that check it answer from what is whole and never take
//! a partial count for a complete one.
//!
//! A pass is planned ([`plan`], read-only: what `--dry-run` prints), then
//! applied ([`apply`]). Dropping a partition needs an ACCESS EXCLUSIVE lock
//! on its parent for a moment; it is asked for with a timeout and retried,
//! so writers never wait behind it for longer than that timeout. Only one
//! process runs a pass at a time ([`try_lock`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::error::StoreError;
use crate::partitions::{self, Partition, day_start, literal, lock_timeout};

/// How many days of each kind of data to keep; `None` keeps it forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Raw events (`events`).
    pub events_days: Option<u32>,
    /// Anomalies (`anomalies`, and outbox entries of removed ones).
    pub anomalies_days: Option<u32>,
    /// Counts per minute, five minutes and hour, the ingest-lag histogram,
    /// and users not seen since.
    pub rollups_days: Option<u32>,
}

impl Policy {
    /// True when nothing is ever removed.
    pub fn keeps_everything(&self) -> bool {
        self.events_days.is_none() && self.anomalies_days.is_none() && self.rollups_days.is_none()
    }
}

/// One thing a pass removes.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    /// A whole partition, dropped.
    Partition {
        /// The partitioned table.
        parent: String,
        /// The partition.
        partition: Partition,
    },
    /// Rows of a table, deleted in batches.
    Rows {
        /// The table.
        table: String,
        /// Which rows (SQL, over the table's columns).
        condition: String,
        /// How many there are now.
        rows: i64,
    },
}

/// What a pass will do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Per kind of data (`events`, `anomalies`, `rollups`), the instant
    /// before which it is removed.
    pub horizons: Vec<(String, DateTime<Utc>)>,
    /// What goes, in the order it goes.
    pub removals: Vec<Removal>,
    /// True when a horizon is new or later than the one recorded: readers
    /// may still be using the old one.
    pub moves_horizons: bool,
}

/// What a pass removed from one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The partitioned table or the table.
    pub table: String,
    /// The partition dropped, if one was.
    pub partition: Option<String>,
    /// Rows removed.
    pub rows: i64,
}

/// Key of the session advisory lock held while a pass (or the creation of
/// partitions) runs; any constant will do.
const MAINTENANCE_LOCK: i64 = 0x6576_7470_7265_7465;
/// Rows deleted per statement.
const DELETE_BATCH: i64 = 10_000;
/// Attempts at a lock before a step fails (the next pass retries it).
const LOCK_ATTEMPTS: u32 = 10;

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    value: bool,
}

/// Takes the maintenance lock for this session if no other session holds
/// it. Released by [`unlock`] or when the connection closes.
pub async fn try_lock(conn: &mut AsyncPgConnection) -> Result<bool, StoreError> {
    let row: Flag = sql_query("SELECT pg_try_advisory_lock($1) AS value")
        .bind::<BigInt, _>(MAINTENANCE_LOCK)
        .get_result(conn)
        .await?;
    Ok(row.value)
}

/// Releases the maintenance lock.
pub async fn unlock(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    sql_query("SELECT pg_advisory_unlock($1) AS value")
        .bind::<BigInt, _>(MAINTENANCE_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Horizon {
    #[diesel(sql_type = Text)]
    data: String,
    #[diesel(sql_type = Timestamptz)]
    complete_from: DateTime<Utc>,
}

/// Per kind of data, the instant from which it is whole (nothing before it
/// was removed when none is listed).
pub async fn horizons(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let rows: Vec<Horizon> = sql_query("SELECT data, complete_from FROM retention ORDER BY data")
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.data, r.complete_from))
        .collect())
}

/// The horizon of a partitioned table kept `days`: the UTC midnight `days`
/// before `now`, moved back to the start of a partition it would cut; never
/// before `previous` (what is gone stays gone). `None`: nothing to remove.
fn partitioned_horizon(
    partitions: &[Partition],
    now: DateTime<Utc>,
    days: u32,
    previous: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let mut horizon = Some(day_start(now - chrono::Duration::days(i64::from(days))));
    if let Some(cut) = partitions.iter().find(|p| {
        let h = horizon.unwrap_or_default();
        !p.is_default() && p.from.is_none_or(|f| f < h) && p.to.is_some_and(|t| h < t)
    }) {
        horizon = cut.from;
    }
    horizon.max(previous)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

async fn count(
    conn: &mut AsyncPgConnection,
    table: &str,
    condition: &str,
) -> Result<i64, StoreError> {
    let row: Count = sql_query(format!(
        "SELECT count(*) AS count FROM \"{table}\" WHERE {condition}"
    ))
    .get_result(conn)
    .await?;
    Ok(row.count)
}

/// What a pass under `policy` at `now` removes. Reads only.
pub async fn plan(
    conn: &mut AsyncPgConnection,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let previous = horizons(conn).await?;
    let previous = |data: &str| previous.iter().find(|(d, _)| d == data).map(|(_, at)| *at);
    let mut plan = Plan {
        horizons: Vec::new(),
        removals: Vec::new(),
        moves_horizons: false,
    };
    for (parent, days) in [
        ("events", policy.events_days),
        ("anomalies", policy.anomalies_days),
    ] {
        let Some(days) = days else { continue };
        let existing = partitions::list(conn, parent).await?;
        let Some(horizon) = partitioned_horizon(&existing, now, days, previous(parent)) else {
            continue;
        };
        plan.horizons.push((parent.to_owned(), horizon));
        for partition in existing {
            if !partition.is_default() && partition.to.is_some_and(|t| t <= horizon) {
                plan.removals.push(Removal::Partition {
                    parent: parent.to_owned(),
                    partition,
                });
            }
        }
        let default = format!("{parent}_default");
        let condition = format!("event_ts < {}", literal(horizon));
        let rows = count(conn, &default, &condition).await?;
        if rows > 0 {
            plan.removals.push(Removal::Rows {
                table: default,
                condition,
                rows,
            });
        }
        if parent == "anomalies" {
            let condition = format!(
                "NOT EXISTS (SELECT 1 FROM anomalies AS a WHERE a.anomaly_id = anomaly_outbox.anomaly_id AND a.event_ts >= {})",
                literal(horizon)
            );
            let rows = count(conn, "anomaly_outbox", &condition).await?;
            if rows > 0 {
                plan.removals.push(Removal::Rows {
                    table: "anomaly_outbox".to_owned(),
                    condition,
                    rows,
                });
            }
        }
    }
    if let Some(days) = policy.rollups_days {
        let horizon = day_start(now - chrono::Duration::days(i64::from(days)));
        let horizon = horizon.max(previous("rollups").unwrap_or(horizon));
        plan.horizons.push(("rollups".to_owned(), horizon));
        for (table, column) in [
            ("event_counts_minute", "minute"),
            ("event_counts_5min", "bucket"),
            ("event_counts_hour", "hour"),
            ("ingest_lag_hour", "hour"),
            ("users", "last_hour"),
        ] {
            let condition = format!("{column} < {}", literal(horizon));
            let rows = count(conn, table, &condition).await?;
            if rows > 0 {
                plan.removals.push(Removal::Rows {
                    table: table.to_owned(),
                    condition,
                    rows,
                });
            }
        }
    }
    plan.moves_horizons = plan
        .horizons
        .iter()
        .any(|(data, at)| previous(data).is_none_or(|p| p < *at));
    Ok(plan)
}

/// True when `error` is a lock wait that ran out of time.
fn is_lock_timeout(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(m) if m.contains("lock timeout"))
}

/// Carries `plan` out: records the horizons, waits `reader_grace` when one
/// moved (a request that read the old horizon a moment before finishes
/// before what it may read goes), then removes. Stops at the first step
/// that fails (a later pass plans again from what is left). `removed`
/// receives each step as it completes.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    plan: &Plan,
    timeout: Duration,
    reader_grace: Duration,
    mut removed: impl FnMut(Removed),
) -> Result<(), StoreError> {
    for (data, horizon) in &plan.horizons {
        sql_query(
            "INSERT INTO retention AS r (data, complete_from) VALUES ($1, $2)
             ON CONFLICT (data) DO UPDATE
               SET complete_from = greatest(r.complete_from, EXCLUDED.complete_from), updated_at = now()",
        )
        .bind::<Text, _>(data)
        .bind::<Timestamptz, _>(horizon)
        .execute(conn)
        .await?;
    }
    if plan.moves_horizons && !plan.removals.is_empty() {
        tokio::time::sleep(reader_grace).await;
    }
    for removal in &plan.removals {
        match removal {
            Removal::Partition { parent, partition } => {
                let rows = count(conn, &partition.table, "true").await?;
                let drop = [
                    lock_timeout(timeout),
                    format!("DROP TABLE \"{}\"", partition.table),
                ];
                with_lock_retries(conn, &drop).await?;
                tracing::info!(table = %parent, partition = %partition.table, rows, "retention dropped a partition");
                removed(Removed {
                    table: parent.clone(),
                    partition: Some(partition.table.clone()),
                    rows,
                });
            }
            Removal::Rows {
                table, condition, ..
            } => {
                let rows = delete_in_batches(conn, table, condition, timeout).await?;
                tracing::info!(%table, rows, "retention deleted rows");
                removed(Removed {
                    table: table.trim_end_matches("_default").to_owned(),
                    partition: None,
                    rows,
                });
            }
        }
    }
    Ok(())
}

/// Runs `statements` in one transaction, again after a pause when a lock
/// wait ran out of time, up to [`LOCK_ATTEMPTS`] times.
async fn with_lock_retries(
    conn: &mut AsyncPgConnection,
    statements: &[String],
) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        let ran = conn
            .transaction::<(), StoreError, _>(async |conn| {
                for statement in statements {
                    sql_query(statement).execute(conn).await?;
                }
                Ok(())
            })
            .await;
        match ran {
            Err(error) if is_lock_timeout(&error) && attempt < LOCK_ATTEMPTS => {
                tracing::debug!(attempt, "lock busy; trying again");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Deletes the rows of `table` matching `condition`, [`DELETE_BATCH`] per
/// transaction, so no lock is held long; returns how many.
async fn delete_in_batches(
    conn: &mut AsyncPgConnection,
    table: &str,
    condition: &str,
    timeout: Duration,
) -> Result<i64, StoreError> {
    let mut total = 0;
    loop {
        let statement = format!(
            "DELETE FROM \"{table}\" WHERE ctid = ANY (ARRAY (SELECT ctid FROM \"{table}\" WHERE {condition} LIMIT {DELETE_BATCH}))"
        );
        let deleted = conn
            .transaction::<usize, StoreError, _>(async |conn| {
                sql_query(lock_timeout(timeout)).execute(conn).await?;
                Ok(sql_query(statement).execute(conn).await?)
            })
            .await?;
        total += deleted as i64;
        if (deleted as i64) < DELETE_BATCH {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::sketch::{at, part};

    #[test]
    fn the_horizon_never_cuts_a_kept_partition_nor_moves_back() {
        let now: DateTime<Utc> = "2026-12-31T15:00:00Z".parse().unwrap_or_default();
        let daily = [
            part(Some("2026-11-30"), Some("2026-12-01")),
            part(Some("2026-12-01"), Some("2026-12-02")),
            part(None, None),
        ];
        assert_eq!(
            partitioned_horizon(&daily, now, 30, None),
            Some(at("2026-12-01"))
        );
        let weekly = [part(Some("2026-11-28"), Some("2026-12-05"))];
        assert_eq!(
            partitioned_horizon(&weekly, now, 30, None),
            Some(at("2026-11-28"))
        );
        let adopted = [part(None, Some("2026-12-05"))];
        assert_eq!(partitioned_horizon(&adopted, now, 30, None), None);
        assert_eq!(
            partitioned_horizon(&adopted, now, 30, Some(at("2026-11-01"))),
            Some(at("2026-11-01"))
        );
        assert_eq!(
            partitioned_horizon(&daily, now, 60, Some(at("2026-12-01"))),
            Some(at("2026-12-01"))
        );
    }
}
