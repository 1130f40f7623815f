//! `GET /api/v1/anomalies`: anomalies, newest first, a page at a time,
//! with the same keyset pages as the events list.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::controllers::analytics::anomalies::AnomalyItem;
use crate::controllers::analytics::query;
use crate::error::{AnalyticsErrors, HttpError};
use crate::pages::{AnomaliesPage, AnomalyListQuery, Cursor, cut};
use crate::state::ReadSide;

/// A page of anomalies.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyList {
    /// Up to `limit` anomalies, newest first (the triggering event's time,
    /// then the anomaly id, descending).
    pub data: Vec<AnomalyItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Stored anomalies, newest first, filtered, a page at a time; walking
/// every page returns each anomaly stored before the walk began once.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "anomalies",
    params(AnomalyListQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "A page of anomalies", body = AnomalyList),
        AnalyticsErrors,
    ))]
pub async fn list_anomalies(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<AnomalyListQuery>, QueryRejection>,
) -> Result<Json<AnomalyList>, HttpError> {
    let page = query(params)?.parse()?;
    Ok(Json(page_of(&read, &page).await?))
}

/// The anomalies `page` asks for, and the cursor after them.
pub(crate) async fn page_of(
    read: &ReadSide,
    page: &AnomaliesPage,
) -> Result<AnomalyList, HttpError> {
    let mut rows = read.analytics.anomalies_page(page).await?;
    let next_cursor = cut(&mut rows, page.limit, |row| Cursor {
        time: row.event_ts,
        id: row.anomaly_id,
    });
    Ok(AnomalyList {
        data: rows.into_iter().map(AnomalyItem::from).collect(),
        next_cursor,
    })
}
