//! `GET /api/v1/summary?hours=N`: the system over the last `N` hours, in
//! one small JSON document: events by type and their users, anomalies by
//! rule and severity, the ingest lag and what the DLQ holds.
//!
//! Each figure is read where it is cheap, so a 24-hour summary over
//! millions of events costs a few milliseconds: event counts from the
//! rollups (exact to the millisecond, as `counts/total`), users from the
//! users table (each user's latest hour; only the users whose latest hour
//! is the window's first are looked up in the events), lag percentiles
//! from the hourly lag histogram of the hours the window touches (within
//! 19 % of the exact value), and the DLQ from the broker's
//! watermarks as the worker last read them (everything the topic holds,
//! not only this window's: the DLQ is what waits for an operator).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::analytics::{TimeRange, lag_quantile};
use crate::controllers::analytics::{Retained, query, time};
use crate::controllers::window::{RuleCount, TypeCount, WindowQuery};
use crate::error::{AnalyticsErrors, HttpError};
use crate::state::ReadSide;

/// The system over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    /// The window, in hours before now.
    pub window_hours: u32,
    /// The window's start (inclusive).
    pub from: String,
    /// The window's end (exclusive): now.
    pub to: String,
    /// Events whose time is in the window.
    pub events: EventSummary,
    /// Anomalies whose triggering event's time is in the window.
    pub anomalies: AnomalySummary,
    /// Received by the API → committed to PostgreSQL, for the events of
    /// the hours the window touches; `null` when there are none.
    pub ingest_lag_ms: Option<Lag>,
    /// The dead-letter topic.
    pub dlq: Dlq,
}

/// Events in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventSummary {
    /// How many.
    pub total: i64,
    /// Users with an event in the window (or later).
    pub unique_users: i64,
    /// By type, largest first.
    pub by_type: Vec<TypeCount>,
    /// What retention left of the window, when it matters (the users are
    /// then counted from the window's first whole hour).
    #[serde(flatten)]
    pub retained: Retained,
}

/// Anomalies in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalySummary {
    /// How many.
    pub total: i64,
    /// By rule and severity, largest first.
    pub by_rule: Vec<RuleCount>,
    /// How many of each severity (`low`, `medium`, `high`; absent: none).
    #[schema(example = json!({"high": 2, "low": 5}))]
    pub by_severity: std::collections::BTreeMap<String, i64>,
    /// What retention left of the window, when it matters.
    #[serde(flatten)]
    pub retained: Retained,
}

/// Ingest-lag percentiles, in milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lag {
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
}

/// What the DLQ holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dlq {
    /// The topic.
    #[schema(example = "events.dlq")]
    pub topic: Option<String>,
    /// Messages it holds, over its whole retention, as of `counted_at`;
    /// `null` until the broker first answered (the rest of the summary
    /// does not wait for it).
    pub messages: Option<u64>,
    /// When the broker gave that count: the worker asks every 2 seconds.
    pub counted_at: Option<String>,
}

/// The system over the last `hours` hours.
#[utoipa::path(get, path = "/api/v1/summary", tag = "summary",
    params(WindowQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "The summary", body = Summary),
        AnalyticsErrors,
    ))]
pub async fn get_summary(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Json<Summary>, HttpError> {
    let hours = query(params)?.hours()?;
    let to = Utc::now();
    let range = TimeRange {
        from: to - TimeDelta::hours(i64::from(hours)),
        to,
    };
    let horizons = read.analytics.horizons().await?;
    // Where retention removed the window's first raw events, events and
    // users are counted from its first whole hour.
    let events_range = range.counted_by_hour(&horizons);
    let summary = read.analytics.summary(&range, &events_range).await?;
    let held = read.dead_letters.as_ref().and_then(|d| d.held());
    let mut by_severity = std::collections::BTreeMap::new();
    for (_, severity, count) in &summary.by_rule {
        *by_severity.entry(severity.clone()).or_insert(0) += count;
    }
    Ok(Json(Summary {
        window_hours: hours,
        from: time(&range.from),
        to: time(&range.to),
        events: EventSummary {
            total: summary.events,
            unique_users: summary.users,
            by_type: TypeCount::all(summary.by_type),
            retained: Retained::new(&range, &events_range, horizons.rollups),
        },
        anomalies: AnomalySummary {
            total: by_severity.values().sum(),
            by_rule: RuleCount::all(summary.by_rule),
            by_severity,
            retained: Retained::new(&range, &range, horizons.anomalies),
        },
        ingest_lag_ms: lag_quantile(&summary.lag, 0.5)
            .zip(lag_quantile(&summary.lag, 0.95))
            .map(|(p50, p95)| Lag {
                p50: hundredths(p50),
                p95: hundredths(p95),
            }),
        dlq: Dlq {
            topic: read.dead_letters.as_ref().map(|d| d.topic().to_owned()),
            messages: held.map(|(n, _)| n),
            counted_at: held.map(|(_, at)| time(&at)),
        },
    }))
}

/// `ms` rounded to 0.01 ms: the histogram is not finer than that.
fn hundredths(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}
