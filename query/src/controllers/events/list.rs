//! `GET /api/v1/events`: stored events, newest first, a page at a time.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::StoredEvent;
use crate::controllers::analytics::query;
use crate::error::{AnalyticsErrors, HttpError};
use crate::pages::{Cursor, EventsQuery, cut};
use crate::state::ReadSide;

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// Up to `limit` events, newest first (event time, then id, descending).
    pub data: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Stored events, newest first, filtered, a page at a time. Walking every
/// page returns each event stored before the walk began exactly once, even
/// while events keep arriving; a deep page costs what the first costs.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(EventsQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventsPage),
        AnalyticsErrors,
    ))]
pub async fn list_events(
    State(read): State<Arc<ReadSide>>,
    params: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventsPage>, HttpError> {
    let page = query(params)?.parse()?;
    let mut rows = read.analytics.events_page(&page).await?;
    let next_cursor = cut(&mut rows, page.limit, |row| Cursor {
        time: row.event_ts,
        id: row.event_id,
    });
    Ok(Json(EventsPage {
        data: rows.into_iter().map(StoredEvent::from).collect(),
        next_cursor,
    }))
}
