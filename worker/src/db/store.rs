//! Writes a batch of events in one transaction, many rows per statement,
//! `ON CONFLICT (event_id) DO NOTHING`, so a redelivered event never makes
//! a second row and the count of rows actually inserted is known.

use chrono::{DateTime, Utc};
use diesel::Insertable;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::DbPool;
use super::schema::events;

/// PostgreSQL takes at most 65535 bind parameters per statement; an event
/// row binds 10, so this many rows fit in one INSERT with room to spare.
const ROWS_PER_STATEMENT: usize = 5000;

/// One row of the `events` table.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    /// Idempotency key.
    pub event_id: Uuid,
    /// Kafka key.
    pub user_id: String,
    /// Event type.
    pub event_type: String,
    /// Origin.
    pub source: String,
    /// Event time, UTC.
    pub event_ts: DateTime<Utc>,
    /// The client's timestamp as sent.
    pub timestamp_raw: Option<serde_json::Value>,
    /// When the API received it.
    pub received_at: DateTime<Utc>,
    /// The payload object.
    pub payload: serde_json::Value,
    /// Kafka partition it was read from.
    pub kafka_partition: i32,
    /// Kafka offset it was read from.
    pub kafka_offset: i64,
}

/// Why a write failed, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or failing; retry the same batch later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The data itself was refused; retrying cannot help.
    #[error("rows refused: {0}")]
    Refused(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            // Constraint and data errors are about the rows, not the server.
            DieselError::DatabaseError(
                DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => StoreError::Refused(e.to_string()),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_data_exception(info.message()) =>
            {
                StoreError::Refused(e.to_string())
            }
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// PostgreSQL's class 22 ("data exception") messages that no retry fixes.
fn is_data_exception(message: &str) -> bool {
    [
        "invalid input syntax",
        "unsupported Unicode escape sequence",
        "invalid byte sequence",
        "value too long",
        "out of range",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Inserts `rows` in one transaction; returns how many were new.
pub async fn store_batch(pool: &DbPool, rows: &[NewEvent]) -> Result<usize, StoreError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    insert_all(&mut conn, rows).await
}

async fn insert_all(conn: &mut AsyncPgConnection, rows: &[NewEvent]) -> Result<usize, StoreError> {
    conn.transaction::<usize, DieselError, _>(async |conn| {
        let mut inserted = 0;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            inserted += diesel::insert_into(events::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        Ok(inserted)
    })
    .await
    .map_err(StoreError::from)
}

/// Inserts rows one by one to find which the database refuses, after a
/// batch was refused as a whole. Returns (inserted, refused row indexes
/// with the reason).
pub async fn store_each(
    pool: &DbPool,
    rows: &[NewEvent],
) -> Result<(usize, Vec<(usize, String)>), StoreError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut inserted = 0;
    let mut refused = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match insert_all(&mut conn, std::slice::from_ref(row)).await {
            Ok(n) => inserted += n,
            Err(StoreError::Refused(reason)) => refused.push((i, reason)),
            Err(unavailable) => return Err(unavailable),
        }
    }
    Ok((inserted, refused))
}
