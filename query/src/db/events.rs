//! Stored events: pages and one event by id.

use chrono::{DateTime, Utc};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::reader::{Analytics, QueryError, keyset_binds, keyset_page, nonempty};
use crate::pages::EventsPage;

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

/// The events table's columns as [`EventRow`] reads them.
const EVENT_COLUMNS: &str = "event_id, user_id, event_type, source, event_ts, timestamp_raw::text AS timestamp_raw, \
received_at, stored_at, payload::text AS payload, kafka_partition, kafka_offset";

impl Analytics {
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

    /// The stored event `id`, if it is stored.
    pub async fn event(&self, id: Uuid) -> Result<Option<EventRow>, QueryError> {
        let query = sql_query(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1"
        ))
        .bind::<SqlUuid, _>(id);
        Ok(self.load(query).await?.into_iter().next())
    }
}
