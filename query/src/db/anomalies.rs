//! Anomalies: counts per rule and severity (or per bucket), the recent
//! list, pages, and the anomalies of one event.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::pg::data_types::PgInterval;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Interval, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::reader::{Analytics, EPOCH, QueryError, keyset_binds, keyset_page, nonempty};
use crate::analytics::params::{AnomalyFilter, AnomalyKey};
use crate::analytics::{Point, TimeRange};
use crate::pages::AnomaliesPage;

const ANOMALY_FILTER: &str = "\
event_ts >= $1 AND event_ts < $2
  AND ($3::text[] IS NULL OR rule = ANY($3))
  AND ($4::text[] IS NULL OR severity = ANY($4))
  AND ($5::text IS NULL OR user_id = $5)";

/// `sql` with [`ANOMALY_FILTER`]'s binds `$1`–`$5`: `range` and `filter`.
fn filtered(
    sql: &str,
    range: &TimeRange,
    filter: &AnomalyFilter,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    sql_query(sql)
        .into_boxed()
        .bind::<Timestamptz, _>(range.from)
        .bind::<Timestamptz, _>(range.to)
        .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.rules))
        .bind::<Nullable<Array<Text>>, _>(nonempty(&filter.severities))
        .bind::<Nullable<Text>, _>(filter.user_id.clone())
}

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

impl Analytics {
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
        let query = filtered(&sql, range, filter)
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
        let query = filtered(&sql, range, filter).bind::<BigInt, _>(i64::from(limit));
        self.load(query).await
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

    /// The anomalies event `id` raised, by rule.
    pub async fn anomalies_of_event(&self, id: Uuid) -> Result<Vec<AnomalyRow>, QueryError> {
        let query = sql_query(
            "SELECT anomaly_id, event_id, user_id, rule, severity, description, event_ts, detected_at, details::text AS details, evidence::text AS evidence
             FROM anomalies WHERE event_id = $1 ORDER BY rule",
        )
        .bind::<SqlUuid, _>(id);
        self.load(query).await
    }
}
