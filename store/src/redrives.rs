//! The record of DLQ redrives (`dlq_redrives`): which DLQ messages
//! `eventpipe dlq redrive` put back on the events topic, so each is
//! redriven once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::error::StoreError;

/// A redrive recorded in `dlq_redrives`.
#[derive(Debug, Clone, Serialize, diesel::QueryableByName)]
pub struct Redriven {
    /// The DLQ partition.
    #[diesel(sql_type = Integer)]
    #[serde(skip)]
    pub dlq_partition: i32,
    /// The DLQ offset.
    #[diesel(sql_type = BigInt)]
    #[serde(skip)]
    pub dlq_offset: i64,
    /// Where the copy went: partition of the events topic.
    #[diesel(sql_type = Integer)]
    pub to_partition: i32,
    /// And its offset there.
    #[diesel(sql_type = BigInt)]
    pub to_offset: i64,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub redriven_at: DateTime<Utc>,
}

/// The redrives recorded for DLQ `topic`, by DLQ partition and offset.
pub async fn recorded(
    conn: &mut AsyncPgConnection,
    topic: &str,
) -> Result<HashMap<(i32, i64), Redriven>, StoreError> {
    let rows: Vec<Redriven> = sql_query(
        "SELECT dlq_partition, dlq_offset, to_partition, to_offset, redriven_at
         FROM dlq_redrives WHERE dlq_topic = $1",
    )
    .bind::<Text, _>(topic)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.dlq_partition, r.dlq_offset), r))
        .collect())
}

/// One redrive to record.
pub struct NewRedrive<'a> {
    /// The DLQ topic, partition and offset of the message.
    pub dlq: (&'a str, i32, i64),
    /// Why it was dead-lettered.
    pub reason: &'a str,
    /// Its event id, when the value had one.
    pub event_id: Option<Uuid>,
    /// Where the copy went: topic, partition, offset.
    pub to: (&'a str, i32, i64),
}

/// Records `redrive` (a second record of the same DLQ message is ignored).
pub async fn record(
    conn: &mut AsyncPgConnection,
    redrive: &NewRedrive<'_>,
) -> Result<(), StoreError> {
    sql_query(
        "INSERT INTO dlq_redrives
           (dlq_topic, dlq_partition, dlq_offset, reason, event_id, to_topic, to_partition, to_offset)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(redrive.dlq.0)
    .bind::<Integer, _>(redrive.dlq.1)
    .bind::<BigInt, _>(redrive.dlq.2)
    .bind::<Text, _>(redrive.reason)
    .bind::<Nullable<SqlUuid>, _>(redrive.event_id)
    .bind::<Text, _>(redrive.to.0)
    .bind::<Integer, _>(redrive.to.1)
    .bind::<BigInt, _>(redrive.to.2)
    .execute(conn)
    .await?;
    Ok(())
}
