//! The anomalies table: reading a user's stored history for the rules to
//! replay, writing anomalies in the batch's transaction (statements that
//! take the caller's connection, so the worker runs them in its own
//! transaction), and the outbox that records which are not yet on the topic.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_query;
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use eventpipe_contract::Anomaly;

use crate::database::DbPool;
use crate::error::StoreError;

/// A stored event of a user's history, as the rules replay it.
#[derive(Debug, Clone, QueryableByName)]
pub struct PastEvent {
    /// Its user.
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// Its type.
    #[diesel(sql_type = Text)]
    pub event_type: String,
    /// Its time.
    #[diesel(sql_type = Timestamptz)]
    pub event_ts: DateTime<Utc>,
    /// Its payload.
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
}

/// The stored events of `users` that the rules may still need: for each
/// event type (`*`: any), those after `since` minus its lookback, in the
/// order their partition held them.
pub async fn history(
    conn: &mut AsyncPgConnection,
    users: &[String],
    lookbacks: &[(String, Duration)],
    since: DateTime<Utc>,
) -> Result<Vec<PastEvent>, StoreError> {
    if users.is_empty() || lookbacks.is_empty() {
        return Ok(Vec::new());
    }
    let types: Vec<&str> = lookbacks.iter().map(|(t, _)| t.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = lookbacks
        .iter()
        .map(|(_, l)| since - chrono::Duration::from_std(*l).unwrap_or(chrono::Duration::MAX))
        .collect();
    Ok(sql_query(
        "SELECT e.user_id, e.event_type, e.event_ts, e.payload
         FROM events e
         JOIN unnest($2::text[], $3::timestamptz[]) AS l (event_type, since)
           ON (l.event_type = '*' OR l.event_type = e.event_type) AND e.event_ts > l.since
         WHERE e.user_id = ANY($1)
           -- A bound of its own, so the partitions before it are not visited.
           AND e.event_ts > $4
         ORDER BY e.user_id, e.kafka_partition, e.kafka_offset",
    )
    .bind::<Array<Text>, _>(users)
    .bind::<Array<Text>, _>(types)
    .bind::<Array<Timestamptz>, _>(&starts)
    .bind::<Timestamptz, _>(starts.iter().min().copied().unwrap_or(since))
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    anomaly_id: Uuid,
}

/// Inserts `found`, skipping ids already stored, and queues the new ones
/// in the outbox; returns them.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    found: &[Anomaly],
) -> Result<Vec<Uuid>, StoreError> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let text = |f: fn(&Anomaly) -> &str| found.iter().map(f).collect::<Vec<&str>>();
    let details: Vec<String> = found.iter().map(|a| a.details.to_string()).collect();
    let evidence: Vec<Option<String>> = found
        .iter()
        .map(|a| (!a.evidence.is_null()).then(|| a.evidence.to_string()))
        .collect();
    let rows: Vec<Id> = sql_query(
        "WITH new AS (
           INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details, evidence)
           SELECT anomaly_id, event_id, user_id, rule, severity, description, event_ts, details::jsonb, evidence::jsonb
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[])
             AS a (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details, evidence)
           ON CONFLICT (anomaly_id, event_ts) DO NOTHING
           RETURNING anomaly_id)
         INSERT INTO anomaly_outbox (anomaly_id) SELECT anomaly_id FROM new
         RETURNING anomaly_id",
    )
    .bind::<Array<SqlUuid>, _>(found.iter().map(|a| a.anomaly_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(found.iter().map(|a| a.event_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(text(|a| &a.user_id))
    .bind::<Array<Text>, _>(text(|a| &a.rule))
    .bind::<Array<Text>, _>(text(|a| a.severity))
    .bind::<Array<Text>, _>(text(|a| &a.description))
    .bind::<Array<Timestamptz>, _>(found.iter().map(|a| a.event_ts).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(details)
    .bind::<Array<Nullable<Text>>, _>(evidence)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.anomaly_id).collect())
}

/// How many anomalies wait in the outbox.
pub async fn outbox_depth(pool: &DbPool) -> Result<i64, StoreError> {
    #[derive(QueryableByName)]
    struct Depth {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        depth: i64,
    }
    let mut conn = crate::database::connection(pool).await?;
    let row: Depth = sql_query("SELECT count(*) AS depth FROM anomaly_outbox")
        .get_result(&mut conn)
        .await?;
    Ok(row.depth)
}

/// Records that `ids` are on the topic.
pub async fn mark_published(pool: &DbPool, ids: &[Uuid]) -> Result<(), StoreError> {
    let mut conn = crate::database::connection(pool).await?;
    sql_query("DELETE FROM anomaly_outbox WHERE anomaly_id = ANY($1)")
        .bind::<Array<SqlUuid>, _>(ids)
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Unpublished {
    #[diesel(sql_type = SqlUuid)]
    anomaly_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Text)]
    rule: String,
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = Text)]
    description: String,
    #[diesel(sql_type = Timestamptz)]
    event_ts: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    details: serde_json::Value,
    #[diesel(sql_type = Nullable<Jsonb>)]
    evidence: Option<serde_json::Value>,
}

/// Up to `limit` anomalies detected more than `older_than` ago and not yet
/// on the topic (their worker stopped between commit and publication).
pub async fn unpublished(
    pool: &DbPool,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<Anomaly>, StoreError> {
    let mut conn = crate::database::connection(pool).await?;
    let rows: Vec<Unpublished> = sql_query(
        "SELECT a.anomaly_id, a.event_id, a.user_id, a.rule, a.severity, a.description, a.event_ts, a.details, a.evidence
         FROM anomaly_outbox o JOIN anomalies a USING (anomaly_id)
         WHERE o.queued_at < now() - make_interval(secs => $1)
         ORDER BY o.queued_at LIMIT $2",
    )
    .bind::<diesel::sql_types::Double, _>(older_than.as_secs_f64())
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Anomaly {
            anomaly_id: r.anomaly_id,
            event_id: r.event_id,
            user_id: r.user_id,
            rule: r.rule,
            severity: match r.severity.as_str() {
                "high" => "high",
                "medium" => "medium",
                _ => "low",
            },
            description: r.description,
            event_ts: r.event_ts,
            details: r.details,
            evidence: r.evidence.unwrap_or_default(),
        })
        .collect())
}
