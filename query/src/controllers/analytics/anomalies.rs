//! Anomalies: `GET /api/v1/analytics/anomalies/counts` (by rule and
//! severity), `/timeseries` and `/recent`. Times are the triggering
//! events' times.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Retained, query, time};
use crate::analytics::TimeRange;
use crate::analytics::params::{
    AnomalyCountsQuery, AnomalyKey, AnomalySeriesQuery, RecentAnomaliesQuery,
};
use crate::db::AnomalyRow;
use crate::error::{AnalyticsErrors, HttpError};
use crate::state::ReadSide;

/// Anomaly counts per rule and/or severity, largest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyCounts {
    /// Start of the range, inclusive.
    pub from: String,
    /// End of the range, exclusive.
    pub to: String,
    /// Anomalies in the range (within the filters).
    #[schema(example = 17)]
    pub total: i64,
    /// One row per group.
    pub data: Vec<AnomalyCount>,
    /// What retention left of the range, when it matters.
    #[serde(flatten)]
    pub retained: Retained,
}

/// One group's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyCount {
    /// The rule, when grouped by rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "high_value_purchase")]
    pub rule: Option<String>,
    /// The severity, when grouped by severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "high")]
    pub severity: Option<String>,
    /// Anomalies in the group.
    #[schema(example = 9)]
    pub count: i64,
}

/// Anomaly counts per bucket, zero-filled, sorted by time (then group).
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalySeries {
    /// Start of the range, inclusive.
    pub from: String,
    /// End of the range, exclusive.
    pub to: String,
    /// The bucket width used.
    #[schema(example = "1h")]
    pub interval: &'static str,
    /// The bucket width in milliseconds.
    #[schema(example = 3600000)]
    pub interval_ms: i64,
    /// One row per bucket (per group, when grouped).
    pub data: Vec<AnomalyPoint>,
    /// What retention left of the range, when it matters.
    #[serde(flatten)]
    pub retained: Retained,
}

/// One bucket's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyPoint {
    /// Start of the bucket.
    #[schema(example = "2026-11-24T11:00:00Z")]
    pub time: String,
    /// The rule, when grouped by rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The severity, when grouped by severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Anomalies in the bucket.
    pub count: i64,
}

/// The newest anomalies, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecentAnomalies {
    /// Start of the range, inclusive.
    pub from: String,
    /// End of the range, exclusive.
    pub to: String,
    /// Up to `limit` anomalies.
    pub data: Vec<AnomalyItem>,
}

/// One anomaly.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyItem {
    /// UUIDv5 of the rule and the triggering event.
    pub anomaly_id: uuid::Uuid,
    /// The triggering event.
    pub event_id: uuid::Uuid,
    /// Whose events.
    #[schema(example = "user-42")]
    pub user_id: String,
    /// The rule that fired.
    #[schema(example = "high_value_purchase")]
    pub rule: String,
    /// low, medium or high.
    #[schema(example = "high")]
    pub severity: String,
    /// What the rule looks for.
    #[schema(example = "purchase amount above 1000")]
    pub description: String,
    /// The triggering event's time.
    pub time: String,
    /// When the worker found it.
    pub detected_at: String,
    /// Observed values and thresholds.
    #[schema(value_type = Object, example = json!({"field": "amount", "value": 1500.0, "above": 1000.0}))]
    pub details: serde_json::Value,
    /// What fired it: `event`, the triggering event as stored (kept with
    /// the anomaly after retention removes the event). Absent for
    /// anomalies stored before evidence was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"event": {
        "event_id": "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f71", "user_id": "user-42", "type": "purchase",
        "source": "web", "time": "2026-11-23T13:45:00Z", "received_at": "2026-11-23T13:45:00.120Z",
        "payload": {"amount": 1500.0, "currency": "USD"}}}))]
    pub evidence: Option<serde_json::Value>,
}

impl From<AnomalyRow> for AnomalyItem {
    fn from(a: AnomalyRow) -> Self {
        AnomalyItem {
            anomaly_id: a.anomaly_id,
            event_id: a.event_id,
            user_id: a.user_id,
            rule: a.rule,
            severity: a.severity,
            description: a.description,
            time: time(&a.event_ts),
            detected_at: time(&a.detected_at),
            details: serde_json::from_str(&a.details).unwrap_or(serde_json::Value::Null),
            evidence: a.evidence.and_then(|e| serde_json::from_str(&e).ok()),
        }
    }
}

/// Whether retention removed anomalies `range` asks for.
async fn retained(read: &ReadSide, range: &TimeRange) -> Result<Retained, HttpError> {
    let horizons = read.analytics.horizons().await?;
    Ok(Retained::new(range, range, horizons.anomalies))
}

/// Anomalies in `[from, to)` by rule and severity.
#[utoipa::path(get, path = "/api/v1/analytics/anomalies/counts", tag = "analytics",
    params(AnomalyCountsQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "Counts per group, largest first", body = AnomalyCounts),
        AnalyticsErrors,
    ))]
pub async fn get_anomaly_counts(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<AnomalyCountsQuery>, QueryRejection>,
) -> Result<Json<AnomalyCounts>, HttpError> {
    let (range, by_rule, by_severity, filter) = query(params)?.parse(Utc::now())?;
    let retained = retained(&read, &range).await?;
    let rows = read
        .analytics
        .anomaly_counts(&range, None, by_rule, by_severity, &filter)
        .await?;
    // Already largest first (then by rule and severity) from the query.
    let data: Vec<AnomalyCount> = rows
        .into_iter()
        .map(|(_, rule, severity, count)| AnomalyCount {
            rule,
            severity,
            count,
        })
        .collect();
    Ok(Json(AnomalyCounts {
        from: time(&range.from),
        to: time(&range.to),
        total: data.iter().map(|c| c.count).sum(),
        data,
        retained,
    }))
}

/// Anomalies per bucket, per rule or severity when grouped.
#[utoipa::path(get, path = "/api/v1/analytics/anomalies/timeseries", tag = "analytics",
    params(AnomalySeriesQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "Every bucket (and group), zero-filled, by time", body = AnomalySeries),
        AnalyticsErrors,
    ))]
pub async fn get_anomaly_timeseries(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<AnomalySeriesQuery>, QueryRejection>,
) -> Result<Json<AnomalySeries>, HttpError> {
    let series = query(params)?.parse(Utc::now(), read.max_buckets)?;
    let retained = retained(&read, &series.range).await?;
    let rows = read
        .analytics
        .anomaly_series(
            &series.range,
            series.buckets.interval,
            series.group,
            &series.filter,
        )
        .await?;
    let data = series
        .filled(rows)
        .into_iter()
        .map(|(start, group, count)| AnomalyPoint {
            time: time(&start),
            rule: group
                .clone()
                .filter(|_| series.group == Some(AnomalyKey::Rule)),
            severity: group.filter(|_| series.group == Some(AnomalyKey::Severity)),
            count,
        })
        .collect();
    Ok(Json(AnomalySeries {
        from: time(&series.range.from),
        to: time(&series.range.to),
        interval: series.buckets.interval.name,
        interval_ms: series.buckets.interval.ms,
        data,
        retained,
    }))
}

/// The newest anomalies in `[from, to)`.
#[utoipa::path(get, path = "/api/v1/analytics/anomalies/recent", tag = "analytics",
    params(RecentAnomaliesQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "Newest first", body = RecentAnomalies),
        AnalyticsErrors,
    ))]
pub async fn get_recent_anomalies(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<RecentAnomaliesQuery>, QueryRejection>,
) -> Result<Json<RecentAnomalies>, HttpError> {
    let (range, limit, filter) = query(params)?.parse(Utc::now())?;
    let rows = read
        .analytics
        .recent_anomalies(&range, limit, &filter)
        .await?;
    Ok(Json(RecentAnomalies {
        from: time(&range.from),
        to: time(&range.to),
        data: rows.into_iter().map(AnomalyItem::from).collect(),
    }))
}
