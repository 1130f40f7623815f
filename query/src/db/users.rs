//! One user: the profile and whether any event of theirs is stored.

use chrono::{DateTime, Utc};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};

use super::reader::{Analytics, QueryError};

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

impl Analytics {
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
}
