//! What the database holds and how fresh it is, for `eventpipe db-stats`:
//! every table and partition with its rows and size, the newest event,
//! the anomalies of the last hour by rule.

use chrono::{DateTime, Utc};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::StoreError;

/// One table or partition.
#[derive(Debug, Serialize, diesel::QueryableByName)]
pub struct Table {
    /// Its name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// The partitioned table it belongs to ("" for a table of its own).
    #[diesel(sql_type = Text)]
    pub partition_of: String,
    /// Rows: PostgreSQL's live-row statistic, or counted with `--exact`.
    #[diesel(sql_type = BigInt)]
    pub rows: i64,
    /// Bytes on disk, indexes and TOAST included (for a partitioned
    /// table: all its partitions).
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
}

/// The newest stored event.
#[derive(Debug, Serialize, diesel::QueryableByName)]
pub struct Newest {
    /// Its event time.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub event_ts: Option<DateTime<Utc>>,
    /// When the API received it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub received_at: Option<DateTime<Utc>>,
    /// When the worker stored it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub stored_at: Option<DateTime<Utc>>,
}

/// Anomalies of one rule.
#[derive(Debug, Serialize, diesel::QueryableByName)]
pub struct RuleCount {
    /// The rule.
    #[diesel(sql_type = Text)]
    pub rule: String,
    /// How many it raised.
    #[diesel(sql_type = BigInt)]
    pub anomalies: i64,
}

const TABLES: &str = "
SELECT c.relname::text AS name,
       COALESCE(parent.relname::text, '') AS partition_of,
       GREATEST(pg_stat_get_live_tuples(c.oid), 0)::bigint AS rows,
       (CASE WHEN c.relkind = 'p'
             THEN (SELECT COALESCE(sum(pg_total_relation_size(i.inhrelid)), 0)
                   FROM pg_inherits i WHERE i.inhparent = c.oid)
             ELSE pg_total_relation_size(c.oid) END)::bigint AS bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits inh ON inh.inhrelid = c.oid
LEFT JOIN pg_class parent ON parent.oid = inh.inhparent
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  AND c.relname NOT LIKE '\\_\\_%'
ORDER BY COALESCE(parent.relname, c.relname), parent.relname IS NOT NULL, c.relname";

const NEWEST: &str = "
SELECT max(event_ts) AS event_ts, max(received_at) AS received_at, max(stored_at) AS stored_at
FROM (SELECT event_ts, received_at, stored_at FROM events
      WHERE event_ts <= now() ORDER BY event_ts DESC LIMIT 1) newest";

const ANOMALIES: &str = "
SELECT rule, count(*)::bigint AS anomalies FROM anomalies
WHERE detected_at >= now() - interval '1 hour' AND event_ts >= now() - interval '7 days'
GROUP BY rule ORDER BY anomalies DESC, rule";

/// Every table and partition, partitioned tables first (`exact`: their
/// rows counted rather than PostgreSQL's statistics); a partitioned table
/// has its partitions' sum.
pub async fn tables(conn: &mut AsyncPgConnection, exact: bool) -> Result<Vec<Table>, StoreError> {
    let mut tables: Vec<Table> = sql_query(TABLES).load(&mut *conn).await?;
    if exact {
        for table in &mut tables {
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = BigInt)]
                n: i64,
            }
            let counted: Count = sql_query(format!(
                "SELECT count(*)::bigint AS n FROM ONLY \"{}\"",
                table.name.replace('"', "\"\"")
            ))
            .get_result(&mut *conn)
            .await?;
            table.rows = counted.n;
        }
    }
    // A partitioned table holds no rows itself: give it its partitions' sum.
    let sums: Vec<(String, i64)> = tables
        .iter()
        .filter(|t| !t.partition_of.is_empty())
        .map(|t| (t.partition_of.clone(), t.rows))
        .collect();
    for table in &mut tables {
        let of_parts: i64 = sums
            .iter()
            .filter(|(parent, _)| *parent == table.name)
            .map(|(_, rows)| rows)
            .sum();
        if of_parts > 0 {
            table.rows = of_parts;
        }
    }
    Ok(tables)
}

/// The event with the latest time up to now (events timestamped in the
/// future are not "newest").
pub async fn newest(conn: &mut AsyncPgConnection) -> Result<Newest, StoreError> {
    Ok(sql_query(NEWEST).get_result(conn).await?)
}

/// Anomalies detected in the last hour, by rule (among events of the last
/// 7 days: older partitions are not read).
pub async fn anomalies_last_hour(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<RuleCount>, StoreError> {
    Ok(sql_query(ANOMALIES).load(conn).await?)
}
