//! The reader: its pool, the read-only transaction with a statement
//! timeout every query runs in, the retention horizons, and the helpers
//! the resources' queries share.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use uuid::Uuid;

use eventpipe_store::DbPool;

use crate::analytics::Horizons;
use crate::pages::Cursor;

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

pub(super) const EPOCH: &str = "timestamptz '1970-01-01 00:00:00+00'";

/// The rest of a keyset page's query after its filters `$1`–`$3`: the
/// range `[$4, $5)` (either end open), the rows after the key `($6, $7)` in
/// `(event_ts, id)` order, newest first, and `$8` rows. See [`keyset_binds`].
pub(super) fn keyset_page(id: &str) -> String {
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
pub(super) fn keyset_binds(
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

pub(super) fn nonempty(values: &[String]) -> Option<Vec<String>> {
    (!values.is_empty()).then(|| values.to_vec())
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

    /// Runs `query` in a read-only transaction under the statement timeout.
    ///
    /// The future owns everything it uses (a pool handle is a cheap clone):
    /// a transaction's async closure borrowing from the caller makes the
    /// handler's future fail axum's `Send` bound for every lifetime.
    pub(super) fn load<Q, U>(&self, query: Q) -> BoxFuture<'static, Result<Vec<U>, QueryError>>
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
