//! Writes a batch of events in one transaction with one statement that
//! stores each event once (see "Exactly once" below) and returns the rows
//! it actually inserted; a last statement, just before the commit, adds
//! exactly those rows to the counts per minute, five minutes and hour, to
//! the users seen and to the ingest-lag histogram (last, because every
//! writer shares those rows' locks). Both statements ([`insert`],
//! [`add_to_rollups`]) run on the caller's connection: the worker runs
//! them in its own transaction with the anomaly rules between them
//! (`worker/src/pipeline/durable.rs`); [`store_batch`] runs them alone.
//!
//! The statement binds one array per column and `unnest`s them, instead of
//! Diesel's multi-row `VALUES` (one bind per cell): the batch is ten binds
//! whatever its size (twelve near a midnight, below), the statement text
//! never changes with it, and JSON goes to the server as text without a
//! `serde_json::Value` round trip. It measured
//! about twice the rows per second of the `VALUES` form.
//!
//! # Exactly once
//!
//! `events` is partitioned by `event_ts` (a partition per UTC day), and a
//! unique key of a partitioned table must hold its partition key, so
//! `event_id` cannot be unique over the whole table. Each partition has its
//! own unique index on `event_id` instead, and the insert says `ON
//! CONFLICT DO NOTHING`, which every unique index of the partition a row
//! goes to arbitrates: an id is stored once per partition, whatever its
//! timestamps, also when another transaction is inserting it at that
//! moment. So a redelivered message (the same id and time) is always
//! skipped while its row is kept, and a re-sent event stamped again
//! (a client that stamps each attempt, or one without a timestamp, which
//! the API stamps on receipt) is skipped when both times fall in one
//! partition. For a copy whose time is within the dedup window of a UTC
//! midnight, the statement also looks for the id among stored events within
//! the window of its time (an index probe of the partitions the window
//! touches); only those rows pay for it. A batch holding an id twice stores
//! its first copy ([`insert`] drops the later ones before binding). A
//! batch with no row near a midnight runs the statement without the probe
//! at all: its plan would open every partition of `events` just to set it
//! up, which measured about 10 % of the insert.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::sql_query;
use diesel::sql_types::{
    Array, Bool, Double, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::database::DbPool;
use crate::error::StoreError;

/// The statement, for a batch with (`true`) or without a row near a UTC
/// midnight: only the first looks across partition boundaries.
fn insert_events(near_midnight: bool) -> &'static str {
    static PLAIN: LazyLock<String> = LazyLock::new(|| insert_events_sql(""));
    static PROBING: LazyLock<String> = LazyLock::new(|| {
        insert_events_sql(
            "
  -- A row near a UTC midnight ($12) may have its stored copy in the next
  -- or previous partition: look for it within the window ($11 seconds).
  WHERE NOT CASE WHEN near THEN EXISTS (
      SELECT FROM events AS e
      WHERE e.event_id = batch.event_id
        AND e.event_ts BETWEEN batch.event_ts - make_interval(secs => $11) AND batch.event_ts + make_interval(secs => $11))
    ELSE false END",
        )
    });
    if near_midnight { &PROBING } else { &PLAIN }
}

fn insert_events_sql(probe: &str) -> String {
    let (near_array, near_column) = if probe.is_empty() {
        ("", "")
    } else {
        (", $12::bool[]", ", near")
    };
    format!(
        "\
INSERT INTO events (event_id, user_id, event_type, source, event_ts, timestamp_raw, received_at, payload, kafka_partition, kafka_offset)
SELECT event_id, user_id, event_type, source, event_ts, timestamp_raw::jsonb, received_at, payload::jsonb, kafka_partition, kafka_offset
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::timestamptz[], $8::text[], $9::int4[], $10::int8[]{near_array})
  AS batch (event_id, user_id, event_type, source, event_ts, timestamp_raw, received_at, payload, kafka_partition, kafka_offset{near_column}){probe}
-- Every unique index of the row's partition arbitrates: its event_id.
ON CONFLICT DO NOTHING
RETURNING event_id"
    )
}

/// Adds the rows a batch inserted to the counts per minute, five minutes
/// and hour, the users seen and the ingest-lag histogram. It runs last in
/// the transaction: the count rows it locks are shared by every writer
/// (other lanes, other workers), so it holds them only until the commit
/// that follows, not while the rules run. `stored_at` is the rows' default,
/// `now()`: the transaction's start, the same here.
const ADD_TO_ROLLUPS: &str = "\
WITH inserted AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
    AS i (user_id, event_type, source, event_ts, received_at)
), per_minute AS (
  INSERT INTO event_counts_minute AS c (minute, event_type, source, count)
  SELECT date_trunc('minute', event_ts, 'UTC'), event_type, source, count(*)
  FROM inserted
  GROUP BY 1, 2, 3
  -- Every writer locks rollup rows in the same order: no deadlocks.
  ORDER BY 1, 2, 3
  ON CONFLICT (minute, event_type, source) DO UPDATE SET count = c.count + EXCLUDED.count
), per_5min AS (
  INSERT INTO event_counts_5min AS c (bucket, event_type, source, count)
  SELECT date_bin('5 minutes', event_ts, timestamptz '1970-01-01 00:00:00+00'), event_type, source, count(*)
  FROM inserted
  GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (bucket, event_type, source) DO UPDATE SET count = c.count + EXCLUDED.count
), per_hour AS (
  INSERT INTO event_counts_hour AS c (hour, event_type, source, count)
  SELECT date_trunc('hour', event_ts, 'UTC'), event_type, source, count(*)
  FROM inserted
  GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (hour, event_type, source) DO UPDATE SET count = c.count + EXCLUDED.count
), seen AS (
  INSERT INTO users AS u (user_id, first_seen, last_hour)
  SELECT b.user_id, b.first_seen, b.last_hour
  FROM (SELECT user_id, min(event_ts) AS first_seen, date_trunc('hour', max(event_ts), 'UTC') AS last_hour
        FROM inserted GROUP BY 1) AS b
  LEFT JOIN users AS known ON known.user_id = b.user_id
  -- Only new users and moved ones reach the upsert: ON CONFLICT DO UPDATE
  -- locks (writes) every conflicting row, even one its WHERE leaves alone.
  WHERE known.user_id IS NULL OR b.first_seen < known.first_seen OR b.last_hour > known.last_hour
  ORDER BY 1
  ON CONFLICT (user_id) DO UPDATE
    SET first_seen = least(u.first_seen, EXCLUDED.first_seen),
        last_hour = greatest(u.last_hour, EXCLUDED.last_hour)
    -- Rewritten only when it moves: once an hour for an active user.
    WHERE EXCLUDED.first_seen < u.first_seen OR EXCLUDED.last_hour > u.last_hour
), lag AS (
  INSERT INTO ingest_lag_hour AS c (hour, bucket, count)
  SELECT date_trunc('hour', event_ts, 'UTC'),
         ceil(4 * log(greatest(extract(epoch FROM now() - received_at)::float8 * 1000, 1)) / log(2.0::float8))::smallint,
         count(*)
  FROM inserted
  GROUP BY 1, 2
  ORDER BY 1, 2
  ON CONFLICT (hour, bucket) DO UPDATE SET count = c.count + EXCLUDED.count
)
-- The inserts above run to completion whatever this reads.
SELECT FROM inserted LIMIT 0";

/// Adds `rows`, those of the batch that were new, to the counts per
/// minute, five minutes and hour, the users seen and the ingest-lag
/// histogram ([`ADD_TO_ROLLUPS`]): the last statement of a batch's
/// transaction.
pub async fn add_to_rollups(
    conn: &mut AsyncPgConnection,
    rows: &[&NewEvent],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&NewEvent) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    sql_query(ADD_TO_ROLLUPS)
        .bind::<Array<Text>, _>(column(|r| &r.user_id))
        .bind::<Array<Text>, _>(column(|r| &r.event_type))
        .bind::<Array<Text>, _>(column(|r| &r.source))
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.event_ts).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

/// What a batch written by [`store_batch`] did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Rows that were new.
    pub inserted: usize,
}

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
}

/// One row of the `events` table.
#[derive(Debug, Clone)]
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
    /// The client's timestamp as sent, as JSON text.
    pub timestamp_raw: Option<String>,
    /// When the API received it.
    pub received_at: DateTime<Utc>,
    /// The payload object, as JSON text.
    pub payload: String,
    /// Kafka partition it was read from.
    pub kafka_partition: i32,
    /// Kafka offset it was read from.
    pub kafka_offset: i64,
}

/// How far apart two copies of an event's time may be for the second to
/// be recognised as the first re-sent, unless configured otherwise.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(3600);

/// Inserts `rows` in one transaction with their rollups, and nothing else
/// (no anomaly rules): for tests, benches and tools. The worker runs
/// [`insert`] and [`add_to_rollups`] in a transaction of its own, with the
/// rules between them.
pub async fn store_batch(
    pool: &DbPool,
    rows: &[NewEvent],
    dedup_window: Duration,
) -> Result<Stored, StoreError> {
    let rows: Vec<&NewEvent> = rows.iter().collect();
    let mut conn = crate::database::connection(pool).await?;
    conn.transaction::<Stored, StoreError, _>(async |conn| {
        let new_rows = insert(conn, &rows, dedup_window).await?;
        add_to_rollups(conn, &new_rows).await?;
        Ok(Stored {
            inserted: new_rows.len(),
        })
    })
    .await
}

/// Inserts `rows` on `conn` (in the caller's transaction), skipping each
/// one whose id is stored in the same partition or with a time within
/// `dedup_window` of its own; returns the rows that were new, in batch
/// order, each once (a batch repeating an id stores its first copy).
pub async fn insert<'r>(
    conn: &mut AsyncPgConnection,
    rows: &[&'r NewEvent],
    dedup_window: Duration,
) -> Result<Vec<&'r NewEvent>, StoreError> {
    let mut ids = HashSet::with_capacity(rows.len());
    // A batch holding an id twice stores its first copy (copies on two
    // sides of a midnight would otherwise both be new to the statement).
    let mut firsts: Vec<&NewEvent> = rows
        .iter()
        .copied()
        .filter(|r| ids.insert(r.event_id))
        .collect();
    // Inserted in event id order: two transactions writing at once (write
    // lanes, workers) that hold some of the same ids (a client re-sending
    // an id under another user) then wait for each other's ids in one
    // order, never in a cycle. Unordered, they deadlocked.
    firsts.sort_unstable_by_key(|r| r.event_id);
    let column = |f: fn(&NewEvent) -> &str| firsts.iter().map(|r| f(r)).collect::<Vec<_>>();
    // Rows whose dedup window crosses a UTC midnight (a partition bound).
    let window = chrono::Duration::from_std(dedup_window).unwrap_or(chrono::Duration::MAX);
    let near: Vec<bool> = firsts
        .iter()
        .map(|r| {
            let before = r.event_ts.checked_sub_signed(window);
            let after = r.event_ts.checked_add_signed(window);
            before
                .zip(after)
                .is_none_or(|(b, a)| b.date_naive() != a.date_naive())
        })
        .collect();
    let near_midnight = near.contains(&true);
    let mut statement = sql_query(insert_events(near_midnight))
        .into_boxed::<Pg>()
        .bind::<Array<SqlUuid>, _>(firsts.iter().map(|r| r.event_id).collect::<Vec<Uuid>>())
        .bind::<Array<Text>, _>(column(|r| &r.user_id))
        .bind::<Array<Text>, _>(column(|r| &r.event_type))
        .bind::<Array<Text>, _>(column(|r| &r.source))
        .bind::<Array<Timestamptz>, _>(firsts.iter().map(|r| r.event_ts).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            firsts
                .iter()
                .map(|r| r.timestamp_raw.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamptz>, _>(firsts.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(column(|r| &r.payload))
        .bind::<Array<Int4>, _>(firsts.iter().map(|r| r.kafka_partition).collect::<Vec<_>>())
        .bind::<Array<Int8>, _>(firsts.iter().map(|r| r.kafka_offset).collect::<Vec<_>>());
    if near_midnight {
        statement = statement
            .bind::<Double, _>(dedup_window.as_secs_f64())
            .bind::<Array<Bool>, _>(near);
    }
    let returned: Vec<Inserted> = statement.load(conn).await?;
    let mut new: HashSet<Uuid> = returned.into_iter().map(|r| r.event_id).collect();
    Ok(rows
        .iter()
        .copied()
        .filter(|r| new.remove(&r.event_id))
        .collect())
}
