//! The summary: events, users, anomalies and ingest lag of a window in
//! one answer.

use diesel::sql_query;
use diesel::sql_types::{BigInt, Timestamptz};

use super::reader::{Analytics, QueryError};
use crate::analytics::TimeRange;
use crate::analytics::params::{AnomalyFilter, EventFilter, EventKey};

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

impl Analytics {
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
}
