//! Making one batch durable: poison messages on the DLQ, rows stored (with
//! the anomaly rules in the same transaction), retried while PostgreSQL or
//! the DLQ fails.

use std::time::{Duration, Instant};

use chrono::Utc;
use eventpipe_anomaly::Anomaly;
use eventpipe_service::telemetry::{self, OpenTelemetrySpanExt, Status};
use eventpipe_store::{AsyncConnection, NewEvent, StoreError, anomalies, events};
use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, Span};

use super::prepare::{Prepared, Row};
use super::spans::{dead_letter_span, event_spans};
use crate::detection::{Detection, History};
use crate::state::{Publication, Worker};

/// What became of a batch.
pub(super) enum Outcome {
    /// Everything is durable (rows stored, poison on the DLQ, this many
    /// messages): commit.
    Durable { dead_lettered: usize },
    /// Shutdown came first: commit nothing.
    Abandoned,
}

/// First pause after a failed write; doubles up to `WORKER_RETRY_MAX_MS`.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Makes one batch durable.
pub(super) async fn process(
    worker: &Worker,
    batch: &Prepared,
    stop: &watch::Receiver<bool>,
    lanes_before: Vec<Option<oneshot::Receiver<()>>>,
    lanes_done: Vec<oneshot::Sender<()>>,
) -> Outcome {
    let spans = event_spans(batch);
    let mut poison: Vec<(usize, &'static str, String)> = batch.poison.clone();
    let failures = Some(&worker.metrics.db_write_failures);
    let turns = lanes_before.into_iter().zip(lanes_done);
    let lanes = batch
        .lanes
        .iter()
        .zip(turns)
        .map(|(lane, (before, done))| async move {
            // The same users' rows of the previous batch first (an error means
            // that batch stopped without writing them: shutdown).
            if let Some(before) = before {
                let _ = before.await;
            }
            if lane.is_empty() {
                drop(done);
                return Some(Vec::new());
            }
            let store = || store_rows(worker, &batch.rows[lane.clone()]);
            let refused = retrying(worker, stop, failures, store).await;
            drop(done);
            let refused = refused?;
            // Indexes within the lane, made indexes within the batch.
            Some(
                refused
                    .into_iter()
                    .map(|(row, error)| (lane.start + row, error))
                    .collect::<Vec<_>>(),
            )
        });
    let mut refused = Vec::new();
    for lane in futures::future::join_all(lanes).await {
        match lane {
            Some(lane) => refused.extend(lane),
            None => return Outcome::Abandoned,
        }
    }
    for (row, error) in refused {
        if let Some((_, span)) = spans.iter().find(|(r, _)| *r == row) {
            span.set_status(Status::error(format!("refused by the database: {error}")));
        }
        poison.push((batch.rows[row].message, "refused_by_database", error));
    }
    drop(spans);
    poison.sort_by_key(|(i, _, _)| *i);

    for (i, reason, error) in &poison {
        let message = &batch.messages[*i];
        tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            reason,
            error = %error,
            "message sent to the dead-letter topic"
        );
        let span = dead_letter_span(worker, batch, *i, reason, error);
        let sent = retrying(worker, stop, None, || async {
            worker
                .source
                .send_to_dlq(message, reason, error)
                .await
                .map_err(|e| StoreError::Unavailable(format!("DLQ: {e}")))
        })
        .instrument(span)
        .await;
        if sent.is_none() {
            return Outcome::Abandoned;
        }
        worker.metrics.dlq.with_label_values(&[reason]).inc();
    }
    Outcome::Durable {
        dead_lettered: poison.len(),
    }
}

/// Writes `rows` (evaluating the anomaly rules on the new ones, in the same
/// transaction); when the database refuses the batch for a data reason,
/// finds the refused rows one by one. Publishes the anomalies once the rows
/// are durable. Returns the refused rows' indexes.
async fn store_rows(worker: &Worker, rows: &[Row]) -> Result<Vec<(usize, String)>, StoreError> {
    let started = Instant::now();
    // The lane's users' states are lent to it for the transaction; other
    // lanes (other users) stage theirs meanwhile.
    let mut staged = match &worker.detector {
        Some(detector) => {
            let mut detector = detector.lock().await;
            let (detector, built_under) = &mut *detector;
            // Partitions moved since the state was built: its users may
            // have been handled elsewhere meanwhile.
            let revocations = worker.source.revocations();
            if *built_under != revocations {
                detector.forget();
                *built_under = revocations;
            }
            Some(detector.stage(rows.iter().map(|r| r.event.user_id.as_str())))
        }
        None => None,
    };
    let mut detection = staged.as_mut().map(Detection::new);
    let transaction = eventpipe_service::child_span!(
        "transaction",
        db.system.name = "postgresql",
        rows = rows.len(),
        stored = tracing::field::Empty,
    );
    let window = worker.config.dedup_window;
    let mut conn = eventpipe_store::connection(&worker.pool).await?;
    let written = write(&mut conn, rows, window, detection.as_mut())
        .instrument(transaction.clone())
        .await;
    let (stored, refused) = match written {
        Ok(stored) => (stored, Vec::new()),
        Err(StoreError::Refused(reason)) => {
            tracing::warn!(%reason, rows = rows.len(), "batch refused; storing row by row");
            transaction.set_status(Status::error(format!("refused: {reason}")));
            let one_by_one =
                eventpipe_service::child_span!("transaction per row", rows = rows.len());
            write_each(&mut conn, rows, window, detection.as_mut())
                .instrument(one_by_one)
                .await?
        }
        Err(e) => {
            transaction.set_status(Status::error(e.to_string()));
            return Err(e);
        }
    };
    drop(conn);
    transaction.record("stored", stored.inserted);
    drop(transaction);
    drop(detection);
    let metrics = &worker.metrics;
    if let (Some(detector), Some(staged)) = (&worker.detector, staged) {
        let (detector, _) = &mut *detector.lock().await;
        detector.keep(staged);
        metrics.anomaly_users.set(detector.users() as i64);
        metrics.anomaly_entries.set(detector.entries() as i64);
    }
    metrics
        .db_write_duration
        .observe(started.elapsed().as_secs_f64());
    metrics.stored.inc_by(stored.inserted as u64);
    metrics
        .duplicates
        .inc_by((rows.len() - refused.len()).saturating_sub(stored.inserted) as u64);
    let now = Utc::now();
    for row in rows {
        let latency = (now - row.event.received_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(0);
        metrics.end_to_end.observe(latency as f64 / 1e6);
    }
    if !stored.anomalies.is_empty() {
        let received: std::collections::HashMap<_, _> = rows
            .iter()
            .map(|r| (r.event.event_id, r.event.received_at))
            .collect();
        for anomaly in &stored.anomalies {
            metrics
                .anomalies
                .with_label_values(&[anomaly.rule.as_str(), anomaly.severity])
                .inc();
            if let Some(at) = received.get(&anomaly.event_id) {
                let latency = (now - *at).num_microseconds().unwrap_or(0).max(0);
                metrics.anomaly_detection.observe(latency as f64 / 1e6);
            }
        }
        let raised_by: std::collections::HashMap<_, _> = rows
            .iter()
            .filter_map(|r| Some((r.event.event_id, r.trace.as_ref()?)))
            .collect();
        let traces = stored
            .anomalies
            .iter()
            .map(|a| raised_by.get(&a.event_id).map(|t| (*t).clone()))
            .collect();
        let publication = Publication {
            anomalies: stored.anomalies,
            traces,
            batch: telemetry::span_context(&Span::current()),
        };
        // Publication waits for Kafka; storing need not. With the queue
        // full (Kafka slow, or a producer being replaced) the anomalies
        // stay in the outbox for the sweep: neither memory nor the
        // pipeline waits on the anomalies topic.
        if let Err(mpsc::error::TrySendError::Full(left)) =
            worker.publications.try_send(publication)
        {
            tracing::debug!(
                anomalies = left.anomalies.len(),
                "the publication queue is full; the sweep publishes these"
            );
        }
    }
    Ok(refused)
}

/// What a transaction wrote.
#[derive(Default)]
struct Written {
    /// Rows that were new.
    inserted: usize,
    /// Anomalies that were new (to publish once the transaction commits).
    anomalies: Vec<Anomaly>,
}

/// Writes `rows` in one transaction, the worker's own sequence of the
/// store's statements: the stored history the rules must replay first,
/// the insert (which returns the rows that were new), the rules on those
/// rows and the anomalies they raise (with their outbox rows), and last
/// the rollups, whose rows every writer shares, so they are locked only
/// until the commit that follows.
async fn write(
    conn: &mut eventpipe_store::Connection<'_>,
    rows: &[Row],
    dedup_window: Duration,
    detection: Option<&mut Detection<'_>>,
) -> Result<Written, StoreError> {
    let all: Vec<&NewEvent> = rows.iter().map(|r| &r.event).collect();
    let all = all.as_slice();
    conn.transaction::<Written, StoreError, _>(async |tx| {
        let mut detection = detection;
        if let Some(detection) = detection.as_deref_mut()
            && let Some(History { users, lookbacks }) = detection.history()
        {
            let since = all
                .iter()
                .filter(|e| users.contains(&e.user_id))
                .map(|e| e.event_ts)
                .min()
                .unwrap_or_else(Utc::now);
            detection.replay(anomalies::history(tx, &users, &lookbacks, since).await?);
        }
        // A new row is evaluated once, even if the batch repeats it.
        let new_rows = events::insert(tx, all, dedup_window).await?;
        let mut found = match detection {
            Some(detection) => detection.evaluate(&new_rows),
            None => Vec::new(),
        };
        let written: std::collections::HashSet<_> =
            anomalies::insert(tx, &found).await?.into_iter().collect();
        found.retain(|a| written.contains(&a.anomaly_id));
        events::add_to_rollups(tx, &new_rows).await?;
        Ok(Written {
            inserted: new_rows.len(),
            anomalies: found,
        })
    })
    .await
}

/// Writes `rows` one transaction each, to find which the database refuses
/// after their batch was refused as a whole: what was stored, and the
/// refused rows' indexes with the reason. A row whose transaction fails
/// leaves its user's rule state as it was.
async fn write_each(
    conn: &mut eventpipe_store::Connection<'_>,
    rows: &[Row],
    dedup_window: Duration,
    mut detection: Option<&mut Detection<'_>>,
) -> Result<(Written, Vec<(usize, String)>), StoreError> {
    let mut stored = Written::default();
    let mut refused = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if let Some(detection) = detection.as_deref_mut() {
            detection.row_starting(&row.event);
        }
        let one = std::slice::from_ref(row);
        match write(conn, one, dedup_window, detection.as_deref_mut()).await {
            Ok(one) => {
                stored.inserted += one.inserted;
                stored.anomalies.extend(one.anomalies);
            }
            Err(error) => {
                if let Some(detection) = detection.as_deref_mut() {
                    detection.row_failed(&row.event);
                }
                match error {
                    StoreError::Refused(reason) => refused.push((i, reason)),
                    unavailable => return Err(unavailable),
                }
            }
        }
    }
    Ok((stored, refused))
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
