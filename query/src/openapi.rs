//! The read side's part of the worker's OpenAPI document: the schemas its
//! routes answer with, its tag and the read-token scheme. The routes add
//! themselves (see [`crate::routes`]); the worker adds the document's
//! title and its own operations.

use eventpipe_service::http::openapi::BearerScheme;
use utoipa::OpenApi;

use crate::controllers::analytics::{anomalies, counts};
use crate::controllers::anomalies::list as anomaly_list;
use crate::controllers::events::{self, get, list};
use crate::controllers::summary;
use crate::controllers::users::get as user;
use crate::controllers::window;
use crate::error::Problem;

/// `Authorization: Bearer <WORKER_ANALYTICS_TOKEN>`.
const READ_TOKEN: BearerScheme = BearerScheme {
    name: "read_token",
    description: "The read token, when the worker has one configured (WORKER_ANALYTICS_TOKEN).",
};

/// The read side's schemas, tag and security scheme.
#[derive(OpenApi)]
#[openapi(
    components(schemas(
        Problem,
        counts::Total,
        counts::Timeseries,
        counts::CountPoint,
        counts::Breakdown,
        counts::BreakdownRow,
        anomalies::AnomalyCounts,
        anomalies::AnomalyCount,
        anomalies::AnomalySeries,
        anomalies::AnomalyPoint,
        anomalies::RecentAnomalies,
        anomalies::AnomalyItem,
        events::StoredEvent,
        list::EventsPage,
        get::EventWithAnomalies,
        anomaly_list::AnomalyList,
        user::UserProfile,
        window::TypeCount,
        window::RuleCount,
        summary::Summary,
        summary::EventSummary,
        summary::AnomalySummary,
        summary::Lag,
        summary::Dlq,
    )),
    modifiers(&READ_TOKEN),
    tags(
        (name = "analytics", description = "Event and anomaly counts for dashboards"),
        (name = "events", description = "Stored events, page by page or one by id"),
        (name = "anomalies", description = "Stored anomalies, page by page"),
        (name = "users", description = "One user's data"),
        (name = "summary", description = "The system over a window"),
    ),
)]
pub struct QueryDoc;
