//! The time partitions of `events` and `anomalies`: what exists, and
//! creating the missing ones. Each table has a partition per span of UTC
//! days (named for its first day: `events_20261202`), possibly one
//! partition of everything before a day (`events_until_20261202`, what the
//! migration made of a table that held rows), and a default partition for
//! rows whose day has none, so no time is ever refused.
//!
//! A new partition is made as a table of its own, filled with the rows of
//! its range that the default partition holds (moved, so none is lost or
//! doubled), then attached. Attaching takes only a SHARE UPDATE EXCLUSIVE
//! lock on the parent, which writers do not wait for; the default
//! partition is locked for the move, which only writers of rows routed to
//! it wait for, and every lock is asked for with a timeout, so a busy
//! table makes the step fail and retry later rather than queue writers
//! behind it.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::error::StoreError;

/// The tables partitioned by event time (their partition key is `event_ts`).
pub const PARTITIONED: [&str; 2] = ["events", "anomalies"];

/// One partition of a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its table.
    pub table: String,
    /// Lower bound (inclusive); `None`: every earlier time.
    pub from: Option<DateTime<Utc>>,
    /// Upper bound (exclusive); `None` with `from` `None`: the default
    /// partition (any time no other partition takes).
    pub to: Option<DateTime<Utc>>,
    /// Rows, as the planner estimates them (`-1`: never analyzed).
    pub rows_estimate: i64,
    /// Size on disk with its indexes, in bytes.
    pub bytes: i64,
}

impl Partition {
    /// True for the default partition.
    pub fn is_default(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

#[derive(QueryableByName)]
struct PartitionRow {
    #[diesel(sql_type = Text)]
    table: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    from: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    to: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    rows_estimate: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// `parent`'s partitions, oldest first, the default partition last.
pub async fn list(
    conn: &mut AsyncPgConnection,
    parent: &str,
) -> Result<Vec<Partition>, StoreError> {
    // The bounds as PostgreSQL prints them, read back in the same session
    // (so in the same DateStyle); MINVALUE and DEFAULT read as NULL.
    let rows: Vec<PartitionRow> = sql_query(
        "SELECT c.relname::text AS table,
                (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS from,
                (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS to,
                c.reltuples::bigint AS rows_estimate,
                pg_total_relation_size(c.oid) AS bytes
         FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1)
         ORDER BY 3 NULLS LAST, 2 NULLS FIRST",
    )
    .bind::<Text, _>(parent)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Partition {
            table: r.table,
            from: r.from,
            to: r.to,
            rows_estimate: r.rows_estimate,
            bytes: r.bytes,
        })
        .collect())
}

/// How partitions are laid out and made.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// UTC days per partition.
    pub span_days: u32,
    /// How long a step waits for a lock before giving up (to retry later).
    pub lock_timeout: Duration,
}

/// The UTC midnight at or before `t`.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_time(chrono::NaiveTime::MIN))
}

/// The ranges to create so that every day of `[from, to)` has a partition
/// of `parent`, given the ones that exist: spans of `span_days` from
/// `from`'s day on, shortened where they would overlap an existing one.
fn missing(
    existing: &[Partition],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    span_days: u32,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let covering = |t: DateTime<Utc>| {
        existing
            .iter()
            .filter(|p| !p.is_default())
            .find(|p| p.from.is_none_or(|f| f <= t) && p.to.is_some_and(|u| t < u))
    };
    let mut ranges = Vec::new();
    let mut cursor = day_start(from);
    while cursor < to {
        if let Some(p) = covering(cursor) {
            cursor = p.to.unwrap_or(to);
            continue;
        }
        let mut end = cursor + chrono::Duration::days(i64::from(span_days.max(1)));
        if let Some(next) = existing
            .iter()
            .filter_map(|p| p.from)
            .filter(|f| *f > cursor)
            .min()
        {
            end = end.min(next);
        }
        ranges.push((cursor, end));
        cursor = end;
    }
    ranges
}

/// Creates the partitions `parent` lacks for the days of `[from, to)`;
/// returns their names. Rows of those days waiting in the default partition
/// move into them.
pub async fn prepare(
    conn: &mut AsyncPgConnection,
    parent: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    layout: Layout,
) -> Result<Vec<String>, StoreError> {
    let existing = list(conn, parent).await?;
    let mut created = Vec::new();
    for (lo, hi) in missing(&existing, from, to, layout.span_days) {
        created.push(create(conn, parent, lo, hi, layout.lock_timeout).await?);
    }
    Ok(created)
}

/// An instant as an SQL literal (the value is ours, never a client's).
pub(crate) fn literal(t: DateTime<Utc>) -> String {
    format!(
        "'{}'",
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// `SET LOCAL lock_timeout` for the transaction.
pub(crate) fn lock_timeout(timeout: Duration) -> String {
    format!(
        "SET LOCAL lock_timeout = '{}ms'",
        timeout.as_millis().max(1)
    )
}

/// The unique key a new partition of `parent` needs of its own (the
/// parent's indexes come with the attach): each partition of `events`
/// holds an id once (see `crate::events`).
fn unique_key(parent: &str, table: &str) -> Option<String> {
    (parent == "events").then(|| {
        format!("ALTER TABLE \"{table}\" ADD CONSTRAINT \"{table}_event_id_key\" UNIQUE (event_id)")
    })
}

async fn create(
    conn: &mut AsyncPgConnection,
    parent: &str,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    timeout: Duration,
) -> Result<String, StoreError> {
    let table = format!("{parent}_{}", lo.format("%Y%m%d"));
    let (from, to) = (literal(lo), literal(hi));
    let statements = [
        Some(lock_timeout(timeout)),
        // First, so that no writer adds a row of this range to the default
        // partition between the move and the attach.
        Some(format!(
            "LOCK TABLE \"{parent}_default\" IN ACCESS EXCLUSIVE MODE"
        )),
        Some(format!(
            "CREATE TABLE \"{table}\" (LIKE \"{parent}\" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )),
        unique_key(parent, &table),
        Some(format!(
            "WITH moved AS (DELETE FROM \"{parent}_default\" WHERE event_ts >= {from} AND event_ts < {to} RETURNING *)
             INSERT INTO \"{table}\" SELECT * FROM moved"
        )),
        Some(format!(
            "ALTER TABLE \"{parent}\" ATTACH PARTITION \"{table}\" FOR VALUES FROM ({from}) TO ({to})"
        )),
    ];
    conn.transaction::<(), StoreError, _>(async |conn| {
        for statement in statements.iter().flatten() {
            sql_query(statement).execute(conn).await?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(%table, from = %lo, to = %hi, "created partition");
    Ok(table)
}

/// Days and partitions written briefly, for this crate's unit tests.
#[cfg(test)]
pub(crate) mod sketch {
    use super::*;

    /// UTC midnight of `day` (`2026-12-01`).
    pub fn at(day: &str) -> DateTime<Utc> {
        format!("{day}T00:00:00Z").parse().unwrap_or_default()
    }

    /// A partition of the days given (`None`: unbounded).
    pub fn part(from: Option<&str>, to: Option<&str>) -> Partition {
        Partition {
            table: String::new(),
            from: from.map(at),
            to: to.map(at),
            rows_estimate: 0,
            bytes: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sketch::{at, part};
    use super::*;

    #[test]
    fn missing_days_skip_what_exists_and_stop_at_the_next_partition() {
        let existing = [
            part(None, Some("2026-12-02")),
            part(Some("2026-12-03"), Some("2026-12-04")),
            part(None, None),
        ];
        let ranges = missing(&existing, at("2026-11-30"), at("2026-12-06"), 1);
        assert_eq!(
            ranges,
            [
                (at("2026-12-02"), at("2026-12-03")),
                (at("2026-12-04"), at("2026-12-05")),
                (at("2026-12-05"), at("2026-12-06")),
            ]
        );
        let weekly = missing(&existing, at("2026-12-04"), at("2026-12-05"), 7);
        assert_eq!(weekly, [(at("2026-12-04"), at("2026-12-11"))]);
        let clipped = missing(
            &[part(Some("2026-12-05"), Some("2026-12-06"))],
            at("2026-12-01"),
            at("2026-12-06"),
            7,
        );
        assert_eq!(clipped, [(at("2026-12-01"), at("2026-12-05"))]);
    }
}
