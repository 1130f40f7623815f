//! The API as an AWS Lambda function: the same router ([`crate::app`]),
//! so the same validation, receipts and error bodies, served through
//! `lambda_http` (API Gateway HTTP and REST APIs, function URLs, ALB).
//! `eventpipe-api` runs this way when Lambda's runtime API is there
//! ([`eventpipe_service::function::on_lambda`]).
//!
//! The producer is made once per execution environment, at its start, and
//! serves every invocation after. Lambda freezes the environment between
//! invocations, and a frozen producer delivers nothing: that loses no
//! acknowledgement, because a request is answered 202 only once Kafka
//! acknowledged every one of its events, so nothing a client was promised
//! is still in the producer's queue when the answer leaves. What may still
//! be queued then belongs to requests answered 503 (assume nothing stored,
//! retry: the retry's `event_id`s make a late delivery harmless) and to the
//! rejected events kept on `API_INVALID_TOPIC`, which are flushed before
//! each answer leaves.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::ApiConfig;
use crate::{AppState, app, start, watch};

/// The longest an answer waits for rejected events to reach their topic.
const INVALID_FLUSH: Duration = Duration::from_secs(1);

/// Serves invocations until the platform stops the environment.
pub async fn run(config: ApiConfig) -> anyhow::Result<()> {
    let state = start(config).await?;
    // Runs while the environment is thawed: keeps readiness current,
    // replaces a producer that can no longer deliver, reads the workers'
    // progress for a backlog bound.
    tokio::spawn(watch(state.clone()));
    let router =
        app(state.clone()).layer(axum::middleware::from_fn_with_state(state, flush_rejected));
    tracing::info!("eventpipe-api serving Lambda invocations");
    lambda_http::run(router)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the Lambda runtime stopped")
}

/// Sends the rejected events a request kept before its answer leaves (and
/// the environment may be frozen).
async fn flush_rejected(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(invalid) = &state.invalid {
        invalid.flush(INVALID_FLUSH).await;
    }
    response
}
