//! The worker's OpenAPI document: operations and the analytics read API.
//! `openapi/worker.json` in the repository is this document; a test fails
//! when they differ, and `cargo run -p eventpipe-worker -- openapi >
//! openapi/worker.json` regenerates it.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::controllers::{analytics, health};
use crate::error::Problem;

struct ReadToken;

impl Modify for ReadToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The read token, when the worker has one configured (WORKER_ANALYTICS_TOKEN).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("read_token", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "eventpipe worker",
        description = "Analytics over the stored events and anomalies, for Grafana's Infinity \
                       datasource and scripts, and the worker's operations endpoints. Ranges are \
                       half-open [from, to), given as epoch milliseconds or RFC 3339; buckets are \
                       UTC and start at multiples of their width since the Unix epoch. Counts are \
                       exact: redelivered events are never counted twice.",
        license(name = "Apache-2.0"),
    ),
    paths(
        analytics::counts::get_total,
        analytics::counts::get_timeseries,
        analytics::counts::get_breakdown,
        analytics::anomalies::get_anomaly_counts,
        analytics::anomalies::get_anomaly_timeseries,
        analytics::anomalies::get_recent_anomalies,
        health::get_health,
        health::get_ready,
        health::get_metrics,
    ),
    components(schemas(
        Problem,
        analytics::counts::Total,
        analytics::counts::Timeseries,
        analytics::counts::CountPoint,
        analytics::counts::Breakdown,
        analytics::counts::BreakdownRow,
        analytics::anomalies::AnomalyCounts,
        analytics::anomalies::AnomalyCount,
        analytics::anomalies::AnomalySeries,
        analytics::anomalies::AnomalyPoint,
        analytics::anomalies::RecentAnomalies,
        analytics::anomalies::AnomalyItem,
        health::Health,
    )),
    modifiers(&ReadToken),
    tags(
        (name = "analytics", description = "Event and anomaly counts for dashboards"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
)]
pub struct WorkerDoc;

/// The document as pretty JSON, exactly as committed under `openapi/`.
pub fn document_json() -> String {
    let mut text = WorkerDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
