//! Event counts: `GET /api/v1/analytics/counts/total`, `/timeseries` and
//! `/breakdown`, from the exact per-minute rollup plus the range's edges.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Retained, query, time};
use crate::analytics::TimeRange;
use crate::analytics::params::{BreakdownQuery, CountsQuery, EventKey, TimeseriesQuery};
use crate::error::{AnalyticsErrors, HttpError};
use crate::state::ReadSide;

/// How many events a range holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Total {
    /// Start of the range, inclusive.
    #[schema(example = "2026-11-24T11:00:00Z")]
    pub from: String,
    /// End of the range, exclusive.
    #[schema(example = "2026-11-24T12:00:00Z")]
    pub to: String,
    /// Events stored with an event time in the range.
    #[schema(example = 12873)]
    pub count: i64,
    /// What retention left of the range, when it matters.
    #[serde(flatten)]
    pub retained: Retained,
}

/// Event counts per bucket, zero-filled, sorted by time (then group).
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    /// Start of the range, inclusive.
    pub from: String,
    /// End of the range, exclusive.
    pub to: String,
    /// The bucket width used.
    #[schema(example = "5m")]
    pub interval: &'static str,
    /// The bucket width in milliseconds.
    #[schema(example = 300000)]
    pub interval_ms: i64,
    /// One row per bucket (per group, when grouped).
    pub data: Vec<CountPoint>,
    /// What retention left of the range, when it matters.
    #[serde(flatten)]
    pub retained: Retained,
}

/// One bucket's count. The first and last buckets may stick out of the
/// range; they count only the events inside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountPoint {
    /// Start of the bucket.
    #[schema(example = "2026-11-24T11:05:00Z")]
    pub time: String,
    /// The event type, when grouped by type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(example = "login")]
    pub event_type: Option<String>,
    /// The source, when grouped by source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Events in the bucket.
    #[schema(example = 112)]
    pub count: i64,
}

/// The largest groups, largest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Breakdown {
    /// Start of the range, inclusive.
    pub from: String,
    /// End of the range, exclusive.
    pub to: String,
    /// The grouping column: `type` or `source`.
    #[schema(example = "type")]
    pub by: &'static str,
    /// Events in the range (all groups, within the filters).
    pub total: i64,
    /// Up to `limit` groups.
    pub data: Vec<BreakdownRow>,
    /// What retention left of the range, when it matters.
    #[serde(flatten)]
    pub retained: Retained,
}

/// One group of a breakdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownRow {
    /// The event type, when broken down by type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(example = "login")]
    pub event_type: Option<String>,
    /// The source, when broken down by source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Events in the group.
    #[schema(example = 5120)]
    pub count: i64,
}

/// The range event counts over `range` are taken over, given retention,
/// and what to say about it.
async fn counted(read: &ReadSide, range: &TimeRange) -> Result<(TimeRange, Retained), HttpError> {
    let horizons = read.analytics.horizons().await?;
    let counted = range.counted(&horizons);
    let retained = Retained::new(range, &counted, horizons.rollups);
    Ok((counted, retained))
}

fn point(time: String, group: Option<String>, key: Option<EventKey>, count: i64) -> CountPoint {
    CountPoint {
        time,
        event_type: group.clone().filter(|_| key == Some(EventKey::Type)),
        source: group.filter(|_| key == Some(EventKey::Source)),
        count,
    }
}

/// Events in `[from, to)`.
#[utoipa::path(get, path = "/api/v1/analytics/counts/total", tag = "analytics",
    params(CountsQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "The count", body = Total),
        AnalyticsErrors,
    ))]
pub async fn get_total(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<CountsQuery>, QueryRejection>,
) -> Result<Json<Total>, HttpError> {
    let (range, filter) = query(params)?.parse(Utc::now())?;
    let (counted, retained) = counted(&read, &range).await?;
    let rows = read
        .analytics
        .event_counts(&counted, None, None, &filter)
        .await?;
    Ok(Json(Total {
        from: time(&range.from),
        to: time(&range.to),
        count: rows.iter().map(|r| r.2).sum(),
        retained,
    }))
}

/// Event counts per bucket: `{"data": [{"time", "type", "count"}]}`.
#[utoipa::path(get, path = "/api/v1/analytics/counts/timeseries", tag = "analytics",
    params(TimeseriesQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "Every bucket (and group), zero-filled, by time", body = Timeseries),
        AnalyticsErrors,
    ))]
pub async fn get_timeseries(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<TimeseriesQuery>, QueryRejection>,
) -> Result<Json<Timeseries>, HttpError> {
    let series = query(params)?.parse(Utc::now(), read.max_buckets)?;
    let (counted, retained) = counted(&read, &series.range).await?;
    let rows = read
        .analytics
        .event_counts(
            &counted,
            Some(series.buckets.interval),
            series.group,
            &series.filter,
        )
        .await?;
    let data = series
        .filled(rows)
        .into_iter()
        .map(|(start, group, count)| point(time(&start), group, series.group, count))
        .collect();
    Ok(Json(Timeseries {
        from: time(&series.range.from),
        to: time(&series.range.to),
        interval: series.buckets.interval.name,
        interval_ms: series.buckets.interval.ms,
        data,
        retained,
    }))
}

/// The largest event types or sources in `[from, to)`.
#[utoipa::path(get, path = "/api/v1/analytics/counts/breakdown", tag = "analytics",
    params(BreakdownQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "The largest groups, largest first", body = Breakdown),
        AnalyticsErrors,
    ))]
pub async fn get_breakdown(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<BreakdownQuery>, QueryRejection>,
) -> Result<Json<Breakdown>, HttpError> {
    let (range, by, limit, filter) = query(params)?.parse(Utc::now())?;
    let (counted, retained) = counted(&read, &range).await?;
    let (groups, total) = read
        .analytics
        .event_breakdown(&counted, by, limit, &filter)
        .await?;
    Ok(Json(Breakdown {
        from: time(&range.from),
        to: time(&range.to),
        by: match by {
            EventKey::Type => "type",
            EventKey::Source => "source",
        },
        total,
        data: groups
            .into_iter()
            .map(|(group, count)| BreakdownRow {
                event_type: (by == EventKey::Type).then(|| group.clone()),
                source: (by == EventKey::Source).then_some(group),
                count,
            })
            .collect(),
        retained,
    }))
}
