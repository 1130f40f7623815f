//! eventpipe's read side: what the worker serves about the stored data.
//! The analytics API (`/api/v1/analytics/*`: event counts, time series and
//! breakdowns, anomaly counts, time series and the recent list) for
//! Grafana's Infinity datasource and scripts, and the read API
//! (`/api/v1/events`, page by page with [`pages`]' cursors, or one by id;
//! `/api/v1/anomalies` and `/api/v1/users/{user_id}/anomalies`, page by
//! page; `/api/v1/users/{user_id}`, one user's profile; `/api/v1/summary`,
//! the system over a window).
//!
//! - [`analytics`]: ranges, bucket intervals, zero-filling, and parsing
//!   the query parameters: plain functions, unit-tested;
//! - [`db`]: the SQL, on a pool of its own with a statement timeout;
//! - [`controllers`]: the handlers, one module per resource;
//! - [`error`]: the one error type and how it is answered;
//! - [`openapi`]: this side's part of the worker's OpenAPI document.
//!
//! [`routes`] gives the routes with their documentation; the worker merges
//! them into its server, behind the read token.

pub mod analytics;
pub mod controllers;
pub mod db;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod schemas;
pub mod state;

use std::sync::Arc;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use controllers::analytics::{anomalies, counts, require_read_token};
use controllers::anomalies::list as anomaly_list;
use controllers::events::{get, list};
use controllers::summary;
use controllers::users::anomalies as user_anomalies;
use controllers::users::get as user;
pub use state::{DeadLetters, ReadSide};

/// Every read-side route, each declared once with its documentation; the
/// state and the read-token check are added by [`routes`].
pub fn router() -> OpenApiRouter<Arc<ReadSide>> {
    OpenApiRouter::with_openapi(openapi::QueryDoc::openapi())
        .routes(routes!(counts::get_total))
        .routes(routes!(counts::get_timeseries))
        .routes(routes!(counts::get_breakdown))
        .routes(routes!(anomalies::get_anomaly_counts))
        .routes(routes!(anomalies::get_anomaly_timeseries))
        .routes(routes!(anomalies::get_recent_anomalies))
        .routes(routes!(list::list_events))
        .routes(routes!(get::get_event))
        .routes(routes!(anomaly_list::list_anomalies))
        .routes(routes!(user_anomalies::list_user_anomalies))
        .routes(routes!(user::get_user))
        .routes(routes!(summary::get_summary))
}

/// [`router`] serving `read`, with the read token required when one is
/// configured.
pub fn routes<S: Clone + Send + Sync + 'static>(read: Arc<ReadSide>) -> OpenApiRouter<S> {
    router()
        .route_layer(axum::middleware::from_fn_with_state(
            read.clone(),
            require_read_token,
        ))
        .with_state(read)
}
