//! The consume → store → commit loop. Each batch is decoded, its poison
//! messages put on the DLQ, its rows written in one transaction, and only
//! then its offsets committed: at-least-once delivery plus idempotent rows
//! is each event stored exactly once. While PostgreSQL (or the DLQ) fails,
//! the same batch is retried with capped exponential backoff and nothing
//! is committed; on shutdown a batch not yet durable is abandoned, to be
//! redelivered.

use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus::IntCounter;
use tokio::sync::watch;

use crate::Worker;
use crate::db::store::{self, NewEvent, StoreError};
use crate::decode::{Verdict, decode};
use crate::source::Received;

/// First pause after a failed write; doubles up to `WORKER_RETRY_MAX_MS`.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// What became of a batch.
enum Outcome {
    /// Everything is durable (rows stored, poison on the DLQ): commit.
    Durable,
    /// Shutdown came first: commit nothing.
    Abandoned,
}

/// Runs until `stop` turns true.
pub async fn run(worker: &Worker, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = &worker.config;
    loop {
        let batch = tokio::select! {
            batch = worker.source.next_batch(config.batch_size, config.batch_wait) => batch,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                continue;
            }
        };
        worker.metrics.consumed.inc_by(batch.len() as u64);
        worker.metrics.batch_messages.observe(batch.len() as f64);
        match process(worker, &batch, &stop).await {
            Outcome::Durable => {
                if let Err(e) = worker.source.commit(&batch) {
                    // The rows are stored; a failed commit only means they
                    // are redelivered and skipped as duplicates.
                    tracing::warn!(error = %e, "offset commit failed; the batch will be redelivered");
                }
            }
            Outcome::Abandoned => {
                tracing::info!(
                    messages = batch.len(),
                    "shutdown: batch abandoned uncommitted"
                );
                return Ok(());
            }
        }
    }
}

/// Makes one batch durable.
async fn process(worker: &Worker, batch: &[Received], stop: &watch::Receiver<bool>) -> Outcome {
    let mut rows: Vec<NewEvent> = Vec::with_capacity(batch.len());
    let mut row_messages: Vec<usize> = Vec::with_capacity(batch.len());
    let mut poison: Vec<(usize, &'static str, String)> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        match decode(m.payload(), m.schema_version(), m.partition(), m.offset()) {
            Verdict::Row(row) => {
                rows.push(*row);
                row_messages.push(i);
            }
            Verdict::Poison { reason, error } => poison.push((i, reason, error)),
        }
    }

    if !rows.is_empty() {
        let failures = Some(&worker.metrics.db_write_failures);
        let refused = match retrying(worker, stop, failures, || store_rows(worker, &rows)).await {
            Some(refused) => refused,
            None => return Outcome::Abandoned,
        };
        for (row, error) in refused {
            poison.push((row_messages[row], "refused_by_database", error));
        }
    }

    for (i, reason, error) in &poison {
        let message = &batch[*i];
        tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            reason,
            error = %error,
            "message sent to the dead-letter topic"
        );
        let sent = retrying(worker, stop, None, || async {
            worker
                .source
                .send_to_dlq(message, reason, error)
                .await
                .map_err(|e| StoreError::Unavailable(format!("DLQ: {e}")))
        })
        .await;
        if sent.is_none() {
            return Outcome::Abandoned;
        }
        worker.metrics.dlq.with_label_values(&[reason]).inc();
    }
    Outcome::Durable
}

/// Writes `rows`; when the database refuses the batch for a data reason,
/// finds the refused rows one by one. Returns the refused rows' indexes.
async fn store_rows(
    worker: &Worker,
    rows: &[NewEvent],
) -> Result<Vec<(usize, String)>, StoreError> {
    let started = Instant::now();
    let (inserted, refused) = match store::store_batch(&worker.pool, rows).await {
        Ok(inserted) => (inserted, Vec::new()),
        Err(StoreError::Refused(reason)) => {
            tracing::warn!(%reason, rows = rows.len(), "batch refused; storing row by row");
            store::store_each(&worker.pool, rows).await?
        }
        Err(e) => return Err(e),
    };
    let metrics = &worker.metrics;
    metrics
        .db_write_duration
        .observe(started.elapsed().as_secs_f64());
    metrics.stored.inc_by(inserted as u64);
    metrics
        .duplicates
        .inc_by((rows.len() - refused.len()).saturating_sub(inserted) as u64);
    let now = Utc::now();
    for row in rows {
        let latency = (now - row.received_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(0);
        metrics.end_to_end.observe(latency as f64 / 1e6);
    }
    Ok(refused)
}

/// Runs `attempt` until it succeeds, backing off while it fails (counting
/// each failure in `failures`); `None` if shutdown came first.
async fn retrying<T, F, Fut>(
    worker: &Worker,
    stop: &watch::Receiver<bool>,
    failures: Option<&IntCounter>,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = FIRST_RETRY;
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => {
                if let Some(counter) = failures {
                    counter.inc();
                }
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "write failed; nothing committed, retrying");
            }
        }
        let mut stop = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return None,
        }
        pause = (pause * 2).min(worker.config.retry_max);
    }
}
