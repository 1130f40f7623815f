//! `GET /api/v1/events/{event_id}`: one stored event and the anomalies it
//! raised, or 404 while it is not stored. A client holding a 202 receipt
//! polls this until its event is there: the worker stores a batch within
//! `WORKER_BATCH_WAIT_MS` (200 ms) of its first message, plus the write.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::StoredEvent;
use crate::analytics::params::ParamError;
use crate::controllers::analytics::anomalies::AnomalyItem;
use crate::error::{HttpError, LookupErrors};
use crate::state::ReadSide;

/// A stored event and the anomalies it raised.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventWithAnomalies {
    /// The event.
    #[serde(flatten)]
    pub event: StoredEvent,
    /// The anomalies it raised, by rule (empty when none).
    pub anomalies: Vec<AnomalyItem>,
}

/// One stored event with the anomalies it raised; 404 until it is stored.
#[utoipa::path(get, path = "/api/v1/events/{event_id}", tag = "events",
    params(("event_id" = uuid::Uuid, Path, description = "The event's id, as in the 202 receipt")),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "The stored event", body = EventWithAnomalies),
        LookupErrors,
    ))]
pub async fn get_event(
    State(read): State<Arc<ReadSide>>,
    Path(event_id): Path<String>,
) -> Result<Json<EventWithAnomalies>, HttpError> {
    let id: uuid::Uuid = event_id.parse().map_err(|_| {
        HttpError::BadParameter(ParamError {
            parameter: "event_id",
            message: format!("must be a UUID, got {event_id:?}"),
        })
    })?;
    let Some(row) = read.analytics.event(id).await? else {
        return Err(HttpError::NotFound(format!(
            "event {id} is not stored (yet): the worker stores accepted events within a batch wait \
             (WORKER_BATCH_WAIT_MS) of their arrival; retry shortly"
        )));
    };
    let anomalies = read.analytics.anomalies_of_event(id).await?;
    Ok(Json(EventWithAnomalies {
        event: StoredEvent::from(row),
        anomalies: anomalies.into_iter().map(AnomalyItem::from).collect(),
    }))
}
