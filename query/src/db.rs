//! The analytics queries. Event counts add the hourly rollup over the
//! range's whole hours, the five-minute rollup over the whole spans left,
//! the per-minute rollup over the whole minutes left (each tier only where
//! it divides the buckets) and a count of the events in the partial-minute
//! edges, so any `[from, to)` is exact to the millisecond while a week
//! reads a few thousand rollup rows instead of millions of events. Anomaly
//! queries read the anomalies table.
//!
//! Each runs in a read-only transaction with a statement timeout, on a pool
//! of its own, so a heavy dashboard never holds up ingestion.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::pg::data_types::PgInterval;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Interval, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use uuid::Uuid;

use eventpipe_store::DbPool;

use crate::analytics::params::{AnomalyFilter, AnomalyKey, EventFilter, EventKey};
use crate::analytics::{Horizons, Point, TimeRange};
use crate::pages::{AnomaliesPage, Cursor, EventsPage};

/// Why an analytics query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query ran past the statement timeout.
    #[error("the query took longer than {0} ms")]
    TimedOut(u64),
    /// PostgreSQL is unreachable or failing.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

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

const EPOCH: &str = "timestamptz '1970-01-01 00:00:00+00'";

const ANOMALY_FILTER: &str = "\
event_ts >= $1 AND event_ts < $2
  AND ($3::text[] IS NULL OR rule = ANY($3))
  AND ($4::text[] IS NULL OR severity = ANY($4))
  AND ($5::text IS NULL OR user_id = $5)";

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    bucket: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// One stored event, as the events table holds it.
#[derive(Debug, diesel::QueryableByName)]
pub struct EventRow {
    /// Its id.
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    /// Whose.
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// Its type.
    #[diesel(sql_type = Text)]
    pub event_type: String,
    /// Where it came from.
    #[diesel(sql_type = Text)]
    pub source: String,
    /// Its time.
    #[diesel(sql_type = Timestamptz)]
    pub event_ts: DateTime<Utc>,
    /// The client's `timestamp` as sent (JSON text), if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub timestamp_raw: Option<String>,
    /// When the API received it.
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
    /// When its row was committed.
    #[diesel(sql_type = Timestamptz)]
    pub stored_at: DateTime<Utc>,
    /// The payload, as JSON text.
    #[diesel(sql_type = Text)]
    pub payload: String,
    /// Kafka partition it was read from.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub kafka_partition: i32,
    /// Kafka offset it was read from.
    #[diesel(sql_type = BigInt)]
    pub kafka_offset: i64,
}

/// What [`Analytics::user_profile`] finds.
#[derive(Debug)]
pub struct Profile {
    /// The first stored event's time.
    pub first_seen: DateTime<Utc>,
    /// The latest stored event's time.
    pub last_seen: DateTime<Utc>,
    /// Every stored event.
    pub events_total: i64,
    /// Events in the window by type, largest first.
    pub by_type: Vec<(String, i64)>,
    /// Anomalies in the window by rule and severity, largest first.
    pub by_rule: Vec<(String, String, i64)>,
    /// Severity-weighted anomalies in the window, halved per day of age.
    pub risk_score: f64,
}

/// What [`Analytics::summary`] finds.
#[derive(Debug)]
pub struct Summary {
    /// Events in the window.
    pub events: i64,
    /// Events in the window by type, largest first.
    pub by_type: Vec<(String, i64)>,
    /// Users with an event at or after the window's start.
    pub users: i64,
    /// Anomalies in the window by rule and severity, largest first.
    pub by_rule: Vec<(String, String, i64)>,
    /// The ingest-lag histogram: (bucket, events), bucket `k` holding lags
    /// in `(2^((k-1)/4), 2^(k/4)]` ms; see [`crate::analytics::lag_quantile`].
    pub lag: Vec<(u16, u64)>,
}

/// The events table's columns as [`EventRow`] reads them.
const EVENT_COLUMNS: &str = "event_id, user_id, event_type, source, event_ts, timestamp_raw::text AS timestamp_raw, \
received_at, stored_at, payload::text AS payload, kafka_partition, kafka_offset";

/// One anomaly as the recent list shows it.
#[derive(Debug, diesel::QueryableByName)]
pub struct AnomalyRow {
    /// Its id.
    #[diesel(sql_type = SqlUuid)]
    pub anomaly_id: Uuid,
    /// The triggering event.
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    /// Whose.
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// Which rule.
    #[diesel(sql_type = Text)]
    pub rule: String,
    /// low, medium or high.
    #[diesel(sql_type = Text)]
    pub severity: String,
    /// What the rule looks for.
    #[diesel(sql_type = Text)]
    pub description: String,
    /// The triggering event's time.
    #[diesel(sql_type = Timestamptz)]
    pub event_ts: DateTime<Utc>,
    /// When the worker found it.
    #[diesel(sql_type = Timestamptz)]
    pub detected_at: DateTime<Utc>,
    /// Observed values and thresholds, as JSON text.
    #[diesel(sql_type = Text)]
    pub details: String,
    /// What fired it (the triggering event as stored), as JSON text;
    /// absent for anomalies stored before it was kept.
    #[diesel(sql_type = Nullable<Text>)]
    pub evidence: Option<String>,
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

/// The rest of a keyset page's query after its filters `$1`–`$3`: the
/// range `[$4, $5)` (either end open), the rows after the key `($6, $7)` in
/// `(event_ts, id)` order, newest first, and `$8` rows. See [`keyset_binds`].
fn keyset_page(id: &str) -> String {
    format!(
        "AND ($4::timestamptz IS NULL OR event_ts >= $4)
               AND ($5::timestamptz IS NULL OR event_ts < $5)
               AND ($6::timestamptz IS NULL OR (event_ts, {id}) < ($6, $7))
             ORDER BY event_ts DESC, {id} DESC
             LIMIT $8"
    )
}

/// Binds [`keyset_page`]'s `$4`–`$8`: one row more than `limit`, the extra
/// one saying that another page follows.
fn keyset_binds(
    query: BoxedSqlQuery<'static, Pg, SqlQuery>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: Option<Cursor>,
    limit: u32,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    query
        .bind::<Nullable<Timestamptz>, _>(from)
        .bind::<Nullable<Timestamptz>, _>(to)
        .bind::<Nullable<Timestamptz>, _>(after.map(|c| c.time))
        .bind::<SqlUuid, _>(after.map_or(Uuid::nil(), |c| c.id))
        .bind::<BigInt, _>(i64::from(limit) + 1)
}

fn nonempty(values: &[String]) -> Option<Vec<String>> {
    (!values.is_empty()).then(|| values.to_vec())
}

fn event_key(key: Option<EventKey>) -> Option<&'static str> {
    key.map(|k| match k {
        EventKey::Type => "type",
        EventKey::Source => "source",
    })
}

/// The reader: a pool and a statement timeout.
pub struct Analytics {
    pool: DbPool,
    timeout_ms: u64,
    /// The retention horizons as last read, and when.
    horizons: std::sync::Mutex<Option<(Instant, Horizons)>>,
}

/// How long the horizons read from the `retention` table are used before
/// they are read again. Retention waits `RETENTION_READER_GRACE_SECS` (60 s
/// by default) after moving a horizon before it removes anything, which
/// covers this plus the longest request.
pub const HORIZONS_MAX_AGE: Duration = Duration::from_secs(2);

impl Analytics {
    /// Reads through `pool`, stopping any statement after `timeout_ms`.
    pub fn new(pool: DbPool, timeout_ms: u64) -> Self {
        Analytics {
            pool,
            timeout_ms,
            horizons: std::sync::Mutex::new(None),
        }
    }

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

    /// Anomaly counts in `range`, per bucket of `interval` when given, per
    /// the grouping columns (as `rule|severity` text when both).
    pub async fn anomaly_counts(
        &self,
        range: &TimeRange,
        interval: Option<crate::analytics::Interval>,
        by_rule: bool,
        by_severity: bool,
        filter: &AnomalyFilter,
    ) -> Result<Vec<(Option<DateTime<Utc>>, Option<String>, Option<String>, i64)>, QueryError> {
        #[derive(diesel::QueryableByName)]
        struct Counted {
            #[diesel(sql_type = Nullable<Timestamptz>)]
            bucket: Option<DateTime<Utc>>,
            #[diesel(sql_type = Nullable<Text>)]
            rule: Option<String>,
            #[diesel(sql_type = Nullable<Text>)]
            severity: Option<String>,
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        let sql = format!(
            "SELECT CASE WHEN $6::interval IS NULL THEN NULL ELSE date_bin($6::interval, event_ts, {EPOCH}) END AS bucket,
                    CASE WHEN $7 THEN rule END AS rule,
                    CASE WHEN $8 THEN severity END AS severity,
                    count(*)::int8 AS count
             FROM anomalies
             WHERE {ANOMALY_FILTER}
             GROUP BY 1, 2, 3
             ORDER BY 1, 4 DESC, 2, 3"
        );
        let query = sql_query(sql)
            .bind::<Timestamptz, _>(range.from)
            .bind::<Timestamptz, _>(range.to)
            .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.rules))
            .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.severities))
            .bind::<Nullable<Text>, _>(filter.user_id.clone())
            .bind::<Nullable<Interval>, _>(
                interval.map(|i| PgInterval::from_microseconds(i.micros())),
            )
            .bind::<diesel::sql_types::Bool, _>(by_rule)
            .bind::<diesel::sql_types::Bool, _>(by_severity);
        let rows: Vec<Counted> = self.load(query).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.bucket, r.rule, r.severity, r.count))
            .collect())
    }

    /// Anomaly counts per bucket, per value of `group` (one series without).
    pub async fn anomaly_series(
        &self,
        range: &TimeRange,
        interval: crate::analytics::Interval,
        group: Option<AnomalyKey>,
        filter: &AnomalyFilter,
    ) -> Result<Vec<Point>, QueryError> {
        let by_rule = group == Some(AnomalyKey::Rule);
        let by_severity = group == Some(AnomalyKey::Severity);
        let rows = self
            .anomaly_counts(range, Some(interval), by_rule, by_severity, filter)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(bucket, rule, severity, count)| {
                (bucket.unwrap_or(range.from), rule.or(severity), count)
            })
            .collect())
    }

    /// The newest `limit` anomalies in `range`, newest first.
    pub async fn recent_anomalies(
        &self,
        range: &TimeRange,
        limit: u32,
        filter: &AnomalyFilter,
    ) -> Result<Vec<AnomalyRow>, QueryError> {
        let sql = format!(
            "SELECT anomaly_id, event_id, user_id, rule, severity, description, event_ts, detected_at, details::text AS details, evidence::text AS evidence
             FROM anomalies
             WHERE {ANOMALY_FILTER}
             ORDER BY event_ts DESC, anomaly_id
             LIMIT $6"
        );
        let query = sql_query(sql)
            .bind::<Timestamptz, _>(range.from)
            .bind::<Timestamptz, _>(range.to)
            .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.rules))
            .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.severities))
            .bind::<Nullable<Text>, _>(filter.user_id.clone())
            .bind::<BigInt, _>(i64::from(limit));
        self.load(query).await
    }

    /// A page of events, newest first (event time, then id, both
    /// descending), after `page.after` when given: up to `page.limit + 1`
    /// rows, the extra one saying that another page follows.
    pub async fn events_page(&self, page: &EventsPage) -> Result<Vec<EventRow>, QueryError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}
             FROM events
             WHERE ($1::text IS NULL OR user_id = $1)
               AND ($2::text[] IS NULL OR event_type = ANY($2))
               AND ($3::text[] IS NULL OR source = ANY($3))
               {}",
            keyset_page("event_id")
        );
        let query = sql_query(sql)
            .into_boxed()
            .bind::<Nullable<Text>, _>(page.user_id.clone())
            .bind::<Nullable<Array<Text>>, _>(nonempty(&page.filter.types))
            .bind::<Nullable<Array<Text>>, _>(nonempty(&page.filter.sources));
        self.load(keyset_binds(
            query, page.from, page.to, page.after, page.limit,
        ))
        .await
    }

    /// A page of anomalies, newest first (triggering event's time, then
    /// anomaly id, both descending), after `page.after` when given: up to
    /// `page.limit + 1` rows, the extra one saying that another page follows.
    pub async fn anomalies_page(
        &self,
        page: &AnomaliesPage,
    ) -> Result<Vec<AnomalyRow>, QueryError> {
        let sql = format!(
            "SELECT anomaly_id, event_id, user_id, rule, severity, description, event_ts, detected_at, details::text AS details, evidence::text AS evidence
             FROM anomalies
             WHERE ($1::text[] IS NULL OR rule = ANY($1))
               AND ($2::text[] IS NULL OR severity = ANY($2))
               AND ($3::text IS NULL OR user_id = $3)
               {}",
            keyset_page("anomaly_id")
        );
        let query = sql_query(sql)
            .into_boxed()
            .bind::<Nullable<Array<Text>>, _>(nonempty(&page.filter.rules))
            .bind::<Nullable<Array<Text>>, _>(nonempty(&page.filter.severities))
            .bind::<Nullable<Text>, _>(page.filter.user_id.clone());
        self.load(keyset_binds(
            query, page.from, page.to, page.after, page.limit,
        ))
        .await
    }

    /// `user`'s profile over the `hours` before now, or `None` when neither
    /// an event nor an anomaly of the user is kept. The risk score weighs low, medium and
    /// high anomalies 1, 3 and 10, halved per day of age.
    pub async fn user_profile(
        &self,
        user: &str,
        hours: u32,
    ) -> Result<Option<Profile>, QueryError> {
        #[derive(diesel::QueryableByName)]
        struct Span {
            #[diesel(sql_type = Nullable<Timestamptz>)]
            first_seen: Option<DateTime<Utc>>,
            #[diesel(sql_type = Nullable<Timestamptz>)]
            last_seen: Option<DateTime<Utc>>,
            #[diesel(sql_type = BigInt)]
            total: i64,
        }
        #[derive(diesel::QueryableByName)]
        struct Counted {
            #[diesel(sql_type = Text)]
            a: String,
            #[diesel(sql_type = Nullable<Text>)]
            b: Option<String>,
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        #[derive(diesel::QueryableByName)]
        struct Score {
            #[diesel(sql_type = diesel::sql_types::Double)]
            score: f64,
        }
        // What is kept of the user: its events, and its anomalies, which
        // retention keeps longer (their times are its events' times).
        let span = self.load(
            sql_query(
                "SELECT min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(total)::int8 AS total
                 FROM (SELECT min(event_ts) AS first_seen, max(event_ts) AS last_seen, count(*) AS total
                         FROM events WHERE user_id = $1
                       UNION ALL
                       SELECT min(event_ts), max(event_ts), 0
                         FROM anomalies WHERE user_id = $1) AS kept",
            )
            .bind::<Text, _>(user.to_owned()),
        );
        let since = "now() - make_interval(hours => $2)";
        let by_type = self.load(
            sql_query(format!(
                "SELECT event_type AS a, NULL::text AS b, count(*)::int8 AS count
                 FROM events WHERE user_id = $1 AND event_ts >= {since}
                 GROUP BY 1 ORDER BY 3 DESC, 1"
            ))
            .bind::<Text, _>(user.to_owned())
            .bind::<diesel::sql_types::Integer, _>(hours as i32),
        );
        let by_rule = self.load(
            sql_query(format!(
                "SELECT rule AS a, severity AS b, count(*)::int8 AS count
                 FROM anomalies WHERE user_id = $1 AND event_ts >= {since}
                 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
            ))
            .bind::<Text, _>(user.to_owned())
            .bind::<diesel::sql_types::Integer, _>(hours as i32),
        );
        let score = self.load(
            sql_query(format!(
                "SELECT coalesce(sum(
                     CASE severity WHEN 'high' THEN 10 WHEN 'medium' THEN 3 ELSE 1 END
                     * power(0.5, greatest(extract(epoch FROM now() - event_ts), 0) / 86400.0)
                 ), 0)::float8 AS score
                 FROM anomalies WHERE user_id = $1 AND event_ts >= {since}"
            ))
            .bind::<Text, _>(user.to_owned())
            .bind::<diesel::sql_types::Integer, _>(hours as i32),
        );
        // Four small queries at once, each on its own connection.
        let (span, by_type, by_rule, score): (Vec<Span>, Vec<Counted>, Vec<Counted>, Vec<Score>) =
            futures::try_join!(span, by_type, by_rule, score)?;
        let Some(Span {
            first_seen: Some(first_seen),
            last_seen: Some(last_seen),
            total,
        }) = span.into_iter().next()
        else {
            return Ok(None);
        };
        Ok(Some(Profile {
            first_seen,
            last_seen,
            events_total: total,
            by_type: by_type.into_iter().map(|c| (c.a, c.count)).collect(),
            by_rule: by_rule
                .into_iter()
                .map(|c| (c.a, c.b.unwrap_or_default(), c.count))
                .collect(),
            risk_score: <[Score]>::first(&score).map_or(0.0, |s| s.score),
        }))
    }

    /// Whether any event or anomaly of `user` is kept.
    pub async fn user_seen(&self, user: &str) -> Result<bool, QueryError> {
        #[derive(diesel::QueryableByName)]
        struct Seen {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            seen: bool,
        }
        let query = sql_query(
            "SELECT EXISTS (SELECT 1 FROM events WHERE user_id = $1)
                 OR EXISTS (SELECT 1 FROM anomalies WHERE user_id = $1) AS seen",
        )
        .bind::<Text, _>(user.to_owned());
        let rows: Vec<Seen> = self.load(query).await?;
        Ok(<[Seen]>::first(&rows).is_some_and(|r| r.seen))
    }

    /// The stored event `id`, if it is stored.
    pub async fn event(&self, id: Uuid) -> Result<Option<EventRow>, QueryError> {
        let query = sql_query(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1"
        ))
        .bind::<SqlUuid, _>(id);
        Ok(self.load(query).await?.into_iter().next())
    }

    /// The anomalies event `id` raised, by rule.
    pub async fn anomalies_of_event(&self, id: Uuid) -> Result<Vec<AnomalyRow>, QueryError> {
        let query = sql_query(
            "SELECT anomaly_id, event_id, user_id, rule, severity, description, event_ts, detected_at, details::text AS details, evidence::text AS evidence
             FROM anomalies WHERE event_id = $1 ORDER BY rule",
        )
        .bind::<SqlUuid, _>(id);
        self.load(query).await
    }

    /// What retention has removed, as the `retention` table says (read at
    /// most every [`HORIZONS_MAX_AGE`]).
    pub async fn horizons(&self) -> Result<Horizons, QueryError> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            data: String,
            #[diesel(sql_type = Timestamptz)]
            complete_from: DateTime<Utc>,
        }
        let cached = *self
            .horizons
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((read_at, horizons)) = cached
            && read_at.elapsed() < HORIZONS_MAX_AGE
        {
            return Ok(horizons);
        }
        let read_at = Instant::now();
        let rows: Vec<Row> = self
            .load(sql_query("SELECT data, complete_from FROM retention"))
            .await?;
        let mut horizons = Horizons::default();
        for row in rows {
            let slot = match row.data.as_str() {
                "events" => &mut horizons.events,
                "anomalies" => &mut horizons.anomalies,
                _ => &mut horizons.rollups,
            };
            *slot = Some(row.complete_from);
        }
        *self
            .horizons
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((read_at, horizons));
        Ok(horizons)
    }

    /// The system over `range`: events by type (and their total) from the
    /// rollups, anomalies by rule and severity, users with an event at or
    /// after `range.from`, and the ingest-lag histogram of the hours
    /// `range` touches. The four queries run at once, each on its own
    /// connection.
    /// Events and users are counted over `events_range`: `range` or, when
    /// retention removed the raw events of its first hour, `range` from
    /// that hour's start.
    pub async fn summary(
        &self,
        range: &TimeRange,
        events_range: &TimeRange,
    ) -> Result<Summary, QueryError> {
        #[derive(diesel::QueryableByName)]
        struct Users {
            #[diesel(sql_type = BigInt)]
            users: i64,
        }
        #[derive(diesel::QueryableByName)]
        struct Bucket {
            #[diesel(sql_type = diesel::sql_types::Int2)]
            bucket: i16,
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        // Users whose latest hour is after the window's first hour are in
        // it; of those whose latest hour is that hour, the events tell
        // (when retention removed them, the whole first hour counts:
        // `events_range` starts at the hour).
        let users = self.load(
            sql_query(
                "SELECT (SELECT count(*) FROM users WHERE last_hour > date_trunc('hour', $1, 'UTC'))
                      + (SELECT count(*) FROM users AS u
                         WHERE u.last_hour = date_trunc('hour', $1, 'UTC')
                           AND ($1 = date_trunc('hour', $1, 'UTC')
                                OR EXISTS (SELECT 1 FROM events AS e
                                           WHERE e.user_id = u.user_id AND e.event_ts >= $1)))
                        AS users",
            )
            .bind::<Timestamptz, _>(events_range.from),
        );
        let lag = self.load(
            sql_query(
                "SELECT bucket, sum(count)::int8 AS count FROM ingest_lag_hour
                 WHERE hour >= date_trunc('hour', $1, 'UTC') AND hour < $2
                 GROUP BY 1 ORDER BY 1",
            )
            .bind::<Timestamptz, _>(range.from)
            .bind::<Timestamptz, _>(range.to),
        );
        let (any_event, any_anomaly) = (EventFilter::default(), AnomalyFilter::default());
        let (by_type, anomalies, users, lag): (_, _, Vec<Users>, Vec<Bucket>) = futures::try_join!(
            self.event_breakdown(events_range, EventKey::Type, u32::MAX, &any_event),
            self.anomaly_counts(range, None, true, true, &any_anomaly),
            users,
            lag,
        )?;
        let (by_type, events) = by_type;
        Ok(Summary {
            events,
            by_type,
            users: <[Users]>::first(&users).map_or(0, |u| u.users),
            by_rule: anomalies
                .into_iter()
                .map(|(_, rule, severity, count)| {
                    (
                        rule.unwrap_or_default(),
                        severity.unwrap_or_default(),
                        count,
                    )
                })
                .collect(),
            lag: lag
                .into_iter()
                .map(|b| (b.bucket.unsigned_abs(), b.count.unsigned_abs()))
                .collect(),
        })
    }

    /// Runs `query` in a read-only transaction under the statement timeout.
    ///
    /// The future owns everything it uses (a pool handle is a cheap clone):
    /// a transaction's async closure borrowing from the caller makes the
    /// handler's future fail axum's `Send` bound for every lifetime.
    fn load<Q, U>(&self, query: Q) -> BoxFuture<'static, Result<Vec<U>, QueryError>>
    where
        Q: LoadQuery<'static, AsyncPgConnection, U> + Send + 'static,
        U: Send + 'static,
    {
        let pool = self.pool.clone();
        let timeout_ms = self.timeout_ms;
        Box::pin(async move {
            let mut conn = pool
                .get()
                .await
                .map_err(|e| QueryError::Unavailable(e.to_string()))?;
            let timeout = format!("SET LOCAL statement_timeout = {timeout_ms}");
            let result = conn
                .build_transaction()
                .read_only()
                .run(async move |conn| {
                    sql_query(timeout).execute(conn).await?;
                    query.load(conn).await
                })
                .await;
            result.map_err(|e| match &e {
                diesel::result::Error::DatabaseError(_, info)
                    if info.message().contains("statement timeout") =>
                {
                    QueryError::TimedOut(timeout_ms)
                }
                _ => QueryError::Unavailable(e.to_string()),
            })
        })
    }
}
