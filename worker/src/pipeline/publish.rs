//! Anomalies onto their topic: what committed batches hand over, in
//! commit order, and a sweep of the outbox for what was left.

use std::sync::Arc;
use std::time::Duration;

use eventpipe_anomaly::Anomaly;
use eventpipe_service::telemetry::{self, OpenTelemetrySpanExt, Status, TraceHeaders};
use eventpipe_store::anomalies;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, Span};

use crate::state::{Publication, Worker};

/// Publishes what committed batches hand over, in commit order. Once
/// `done` turns true (the pipeline has stopped, nothing more will be
/// queued) it publishes what is left and returns.
pub async fn publish_committed(
    worker: Arc<Worker>,
    mut queue: mpsc::Receiver<Publication>,
    mut done: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            next = queue.recv() => next,
            stopped = done.wait_for(|d| *d) => {
                drop(stopped);
                break;
            }
        };
        match next {
            Some(publication) => publish_traced(&worker, &publication).await,
            None => return,
        }
    }
    while let Ok(publication) = queue.try_recv() {
        publish_traced(&worker, &publication).await;
    }
}

/// [`publish`] in a span, child of the batch that stored the anomalies.
pub(crate) async fn publish_traced(worker: &Worker, publication: &Publication) {
    if !publication.batch.is_sampled() {
        return publish(worker, &publication.anomalies, &publication.traces).await;
    }
    let span = eventpipe_service::span!(
        parent: None,
        "publish anomalies",
        otel.kind = "producer",
        messaging.destination.name = worker.config.anomalies_topic.as_str(),
        messaging.batch.message_count = publication.anomalies.len(),
    );
    let _ = span.set_parent(telemetry::remote_parent(publication.batch.clone()));
    publish(worker, &publication.anomalies, &publication.traces)
        .instrument(span)
        .await;
}

/// Puts stored anomalies on the topic, each with the trace context of the
/// event that raised it (`traces`, when known), and records that they are
/// there. A failure leaves them for [`sweep_unpublished`]: at least once,
/// never lost.
async fn publish(worker: &Worker, anomalies: &[Anomaly], traces: &[Option<TraceHeaders>]) {
    if anomalies.is_empty() {
        return;
    }
    let published = match worker.source.publish_anomalies(anomalies, traces).await {
        Ok(()) => {
            let ids: Vec<uuid::Uuid> = anomalies.iter().map(|a| a.anomaly_id).collect();
            anomalies::mark_published(&worker.pool, &ids)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = published {
        Span::current().set_status(Status::error(error.clone()));
        worker.metrics.anomaly_publish_failures.inc();
        tracing::warn!(%error, anomalies = anomalies.len(), "anomalies stored but not yet published; the sweep retries");
    }
}

/// How often, and after how long, stored anomalies still unpublished (a
/// worker stopped between commit and publication, or Kafka refused) are
/// published by whichever worker finds them.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Publishes anomalies left unpublished, forever.
pub async fn sweep_unpublished(worker: Arc<Worker>) {
    if worker.detector.is_none() {
        return;
    }
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        sweep_once(&worker).await;
    }
}

/// Publishes anomalies stored more than [`SWEEP_EVERY`] ago and still
/// unpublished (up to 1000).
pub(crate) async fn sweep_once(worker: &Worker) {
    match anomalies::unpublished(&worker.pool, SWEEP_EVERY, 1000).await {
        Ok(left) if !left.is_empty() => {
            tracing::info!(
                anomalies = left.len(),
                "publishing anomalies left unpublished"
            );
            publish(worker, &left, &[]).await;
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "unpublished anomalies could not be read"),
    }
}
