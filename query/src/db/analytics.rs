//! Event counts: each range read as pieces (whole hours from the hourly
//! rollup, five-minute spans, whole minutes, and the partial-minute edges
//! from the events), bucketed and grouped; the breakdown of the top
//! groups.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::pg::data_types::PgInterval;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Interval, Nullable, Text, Timestamptz};

use super::reader::{Analytics, EPOCH, QueryError, nonempty};
use crate::analytics::params::{EventFilter, EventKey};
use crate::analytics::{Point, TimeRange};

/// Where the pieces of `[$1, $2)` are read: whole hours `[$7, $8)` from the
/// hourly rollup, five-minute spans `[$5, $7)` and `[$8, $6)`, whole
/// minutes `[$3, $5)` and `[$6, $4)`, and the edges `[$1, $3)` and
/// `[$4, $2)` from the events. See [`crate::analytics::Split`].
const PIECES: [(&str, &str, &str, (&str, &str)); 7] = [
    ("event_counts_hour", "hour", "count", ("$7", "$8")),
    ("event_counts_5min", "bucket", "count", ("$5", "$7")),
    ("event_counts_5min", "bucket", "count", ("$8", "$6")),
    ("event_counts_minute", "minute", "count", ("$3", "$5")),
    ("event_counts_minute", "minute", "count", ("$6", "$4")),
    ("events", "event_ts", "1", ("$1", "$3")),
    ("events", "event_ts", "1", ("$4", "$2")),
];

/// The `pieces` CTE: one branch per piece, each a plain range on its
/// table's leading key column, so the rollups are read by index-only scans
/// in key order (an `OR` of two ranges would force a bitmap scan of the
/// heap), and each summed per instant and group as it streams out of the
/// index, so the bucketing above sees one row per minute (or hour) and
/// group rather than one per type and source. `$9` and `$10` filter types
/// and sources (NULL: any); `$12` names the group column.
fn event_pieces_sql() -> String {
    let branches: Vec<String> = PIECES
        .iter()
        .map(|(table, column, count, (from, to))| {
            format!(
                "  (SELECT {column} AS ts, {GROUP} AS grp, sum({count}) AS count FROM {table}
   WHERE {column} >= {from} AND {column} < {to}
     AND ($9::text[] IS NULL OR event_type = ANY($9)) AND ($10::text[] IS NULL OR source = ANY($10))
   GROUP BY 1, 2)"
            )
        })
        .collect();
    format!("WITH pieces AS (\n{}\n)", branches.join("\n  UNION ALL\n"))
}

/// The group column `$12` asks for ('type', 'source' or NULL: none).
const GROUP: &str = "CASE $12::text WHEN 'type' THEN event_type WHEN 'source' THEN source END";

/// Buckets of `$11` width (NULL: one bucket), grouped by `$12` ('type',
/// 'source' or NULL). Built once; the text never changes.
static EVENT_BUCKETS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}
SELECT CASE WHEN $11::interval IS NULL THEN $1 ELSE date_bin($11::interval, ts, {EPOCH}) END AS bucket,
       grp,
       sum(count)::int8 AS count
FROM pieces
GROUP BY 1, 2",
        event_pieces_sql()
    )
});

/// Top `$11` groups of `$12`, each row also carrying the count over all
/// groups (the window is summed before `LIMIT` cuts).
static EVENT_BREAKDOWN_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}
SELECT grp,
       sum(count)::int8 AS count,
       (sum(sum(count)) OVER ())::int8 AS total
FROM pieces
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT $11",
        event_pieces_sql()
    )
});

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    bucket: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// A filter list as a bind: NULL when empty (no filter). Owned, so the
/// query can move into the transaction's future.
/// `sql` with the ten binds of [`event_pieces_sql`] for `range` cut for
/// buckets of `interval`.
fn pieces(
    sql: &str,
    range: &TimeRange,
    interval: Option<crate::analytics::Interval>,
    filter: &EventFilter,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let split = range.split(interval);
    sql_query(sql)
        .into_boxed()
        .bind::<Timestamptz, _>(range.from)
        .bind::<Timestamptz, _>(range.to)
        .bind::<Timestamptz, _>(split.minutes.0)
        .bind::<Timestamptz, _>(split.minutes.1)
        .bind::<Timestamptz, _>(split.fives.0)
        .bind::<Timestamptz, _>(split.fives.1)
        .bind::<Timestamptz, _>(split.hours.0)
        .bind::<Timestamptz, _>(split.hours.1)
        .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.types))
        .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.sources))
}

fn event_key(key: Option<EventKey>) -> Option<&'static str> {
    key.map(|k| match k {
        EventKey::Type => "type",
        EventKey::Source => "source",
    })
}

impl Analytics {
    /// Event counts in `range` per bucket of `interval` (one bucket from
    /// `range.from` without), per `group` value (one group without).
    pub async fn event_counts(
        &self,
        range: &TimeRange,
        interval: Option<crate::analytics::Interval>,
        group: Option<EventKey>,
        filter: &EventFilter,
    ) -> Result<Vec<Point>, QueryError> {
        let query = pieces(&EVENT_BUCKETS_SQL, range, interval, filter)
            .bind::<Nullable<Interval>, _>(
                interval.map(|i| PgInterval::from_microseconds(i.micros())),
            )
            .bind::<Nullable<Text>, _>(event_key(group));
        let rows: Vec<Row> = self.load(query).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.bucket.unwrap_or(range.from), r.grp, r.count))
            .collect())
    }

    /// The `limit` largest groups of `by` in `range`, largest first, and
    /// the count over all groups.
    pub async fn event_breakdown(
        &self,
        range: &TimeRange,
        by: EventKey,
        limit: u32,
        filter: &EventFilter,
    ) -> Result<(Vec<(String, i64)>, i64), QueryError> {
        #[derive(diesel::QueryableByName)]
        struct Ranked {
            #[diesel(sql_type = Nullable<Text>)]
            grp: Option<String>,
            #[diesel(sql_type = BigInt)]
            count: i64,
            #[diesel(sql_type = BigInt)]
            total: i64,
        }
        let query = pieces(&EVENT_BREAKDOWN_SQL, range, None, filter)
            .bind::<BigInt, _>(i64::from(limit))
            .bind::<Nullable<Text>, _>(event_key(Some(by)));
        let rows: Vec<Ranked> = self.load(query).await?;
        // No row means no event in the range. (`first` of the slice: diesel's
        // query DSL, in scope here, has one too.)
        let total = <[Ranked]>::first(&rows).map_or(0, |r| r.total);
        let groups = rows
            .into_iter()
            .map(|r| (r.grp.unwrap_or_default(), r.count))
            .collect();
        Ok((groups, total))
    }
}
