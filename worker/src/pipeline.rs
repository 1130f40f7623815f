//! The consume → store → commit loop. Each batch is decoded, its poison
//! messages put on the DLQ, its rows written in one transaction, and only
//! then its offsets committed: at-least-once delivery plus idempotent rows
//! is each event stored exactly once. While PostgreSQL (or the DLQ) fails,
//! the same batch is retried with capped exponential backoff and nothing
//! is committed; on shutdown a batch not yet durable is abandoned, to be
//! redelivered.
//!
//! One batch is written while the next is fetched and decoded, so the
//! worker's CPU work overlaps the database's. Batches are still made
//! durable and committed strictly in order: batch N+1 is written only after
//! batch N was committed.
//!
//! A batch's rows are written in `WORKER_WRITE_LANES` transactions at once,
//! on connections of their own, split by user: each user's events go to one
//! lane, in batch order, so the anomaly rules see them as before. The
//! batch's offsets are committed once every lane is durable; a lane that
//! fails is retried on its own (its rows are idempotent like any other).
//! One transaction keeps one PostgreSQL backend, so one core, busy; lanes
//! let the database use the others.
//!
//! When traces are exported, a batch is the root span of its own trace,
//! linked to the context each event came with (a batch serves many
//! traces); its children are the transaction, the rule evaluation, the
//! anomaly publication and each dead-lettering. Each event whose context
//! was sampled also gets a `store event` span in the client's own trace,
//! linked back to the batch, so one trace shows a request from the HTTP
//! call to its row.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use eventpipe_service::telemetry::{
    self, KeyValue, OpenTelemetrySpanExt, SpanContext, Status, TraceHeaders,
};
use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, Span};

use crate::state::{Publication, Worker};
use eventpipe_anomaly::Anomaly;
use eventpipe_store::{NewEvent, StoreError, WithinBatch, anomalies};

use crate::decode::{Verdict, decode};
use crate::detection::Detection;
use crate::source::Received;

/// First pause after a failed write; doubles up to `WORKER_RETRY_MAX_MS`.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// What became of a batch.
enum Outcome {
    /// Everything is durable (rows stored, poison on the DLQ, this many
    /// messages): commit.
    Durable { dead_lettered: usize },
    /// Shutdown came first: commit nothing.
    Abandoned,
}

/// A decoded batch, ready to be made durable.
struct Prepared {
    messages: Vec<Received>,
    /// The rows, grouped by lane (in batch order within each).
    rows: Vec<NewEvent>,
    /// Where each lane's rows are in `rows`, lane by lane.
    lanes: Vec<std::ops::Range<usize>>,
    /// For each row, the index of its message.
    row_messages: Vec<usize>,
    /// For each row, the trace context headers its message carried.
    traces: Vec<Option<TraceHeaders>>,
    /// For each message, the span context it carried; empty when traces
    /// are not exported.
    contexts: Vec<Option<SpanContext>>,
    /// Messages for the DLQ: index, reason, error.
    poison: Vec<(usize, &'static str, String)>,
    /// [`crate::source::Source::revocations`] when the batch was read.
    revocations: u64,
}

/// The lane of a user's events among `lanes`: a hash of the id (FNV-1a),
/// the same in every batch and every worker.
pub fn lane_of(user_id: &str, lanes: usize) -> usize {
    let hash = user_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % lanes as u64) as usize
}

fn prepare(messages: Vec<Received>, revocations: u64, lanes: usize) -> Prepared {
    let mut rows = Vec::with_capacity(messages.len());
    let mut row_messages = Vec::with_capacity(messages.len());
    let mut traces = Vec::with_capacity(messages.len());
    let mut poison = Vec::new();
    let traced = telemetry::enabled();
    let mut contexts = Vec::with_capacity(if traced { messages.len() } else { 0 });
    for (i, m) in messages.iter().enumerate() {
        let trace = m.trace();
        if traced {
            contexts.push(trace.as_ref().and_then(TraceHeaders::context));
        }
        match decode(m.payload(), m.schema_version(), m.partition(), m.offset()) {
            Verdict::Row(row) => {
                rows.push(*row);
                row_messages.push(i);
                traces.push(trace);
            }
            Verdict::Poison { reason, error } => poison.push((i, reason, error)),
        }
    }
    let (rows, row_messages, traces, lanes) = by_lane(rows, row_messages, traces, lanes);
    Prepared {
        messages,
        rows,
        lanes,
        row_messages,
        traces,
        contexts,
        poison,
        revocations,
    }
}

/// Reorders the rows (and their message indexes and traces) so each lane's
/// are together, in batch order; where each lane's rows are (a range per
/// lane, empty when it has none).
#[allow(clippy::type_complexity)]
fn by_lane(
    rows: Vec<NewEvent>,
    row_messages: Vec<usize>,
    traces: Vec<Option<TraceHeaders>>,
    lanes: usize,
) -> (
    Vec<NewEvent>,
    Vec<usize>,
    Vec<Option<TraceHeaders>>,
    Vec<std::ops::Range<usize>>,
) {
    let lanes = lanes.max(1);
    let mut tagged: Vec<(usize, NewEvent, usize, Option<TraceHeaders>)> = rows
        .into_iter()
        .zip(row_messages)
        .zip(traces)
        .map(|((row, message), trace)| (lane_of(&row.user_id, lanes), row, message, trace))
        .collect();
    // Stable: batch order within a lane.
    tagged.sort_by_key(|(lane, ..)| *lane);
    let mut bounds = Vec::with_capacity(lanes);
    let mut start = 0;
    for lane in 0..lanes {
        let end = start + tagged[start..].iter().take_while(|t| t.0 == lane).count();
        bounds.push(start..end);
        start = end;
    }
    let mut rows = Vec::with_capacity(tagged.len());
    let mut row_messages = Vec::with_capacity(tagged.len());
    let mut traces = Vec::with_capacity(tagged.len());
    for (_, row, message, trace) in tagged {
        rows.push(row);
        row_messages.push(message);
        traces.push(trace);
    }
    (rows, row_messages, traces, bounds)
}

/// The most links a batch span records (the SDK's default limit).
const MAX_LINKS: usize = 128;

/// The batch's span: the root of its own trace, linked to each distinct
/// context its events came with (with the first such event's id, partition
/// and offset). Disabled when traces are not exported.
fn batch_span(worker: &Worker, batch: &Prepared) -> Span {
    if !telemetry::enabled() {
        return Span::none();
    }
    let span = eventpipe_service::span!(
        parent: None,
        "batch",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = worker.config.events_topic.as_str(),
        messaging.batch.message_count = batch.messages.len(),
    );
    let mut linked = HashSet::new();
    let event_ids: std::collections::HashMap<usize, uuid::Uuid> = batch
        .row_messages
        .iter()
        .zip(&batch.rows)
        .map(|(&i, row)| (i, row.event_id))
        .collect();
    for (i, context) in batch.contexts.iter().enumerate() {
        let Some(context) = context else { continue };
        if linked.len() == MAX_LINKS || !linked.insert(context.span_id()) {
            continue;
        }
        let message = &batch.messages[i];
        let mut attributes = message_attributes(message);
        if let Some(id) = event_ids.get(&i) {
            attributes.push(KeyValue::new("eventpipe.event_id", id.to_string()));
        }
        span.add_link_with_attributes(context.clone(), attributes);
    }
    telemetry::sampled(span)
}

/// Where a message was read from, as span attributes.
fn message_attributes(message: &Received) -> Vec<KeyValue> {
    vec![
        KeyValue::new(
            "messaging.destination.partition.id",
            message.partition().to_string(),
        ),
        KeyValue::new("messaging.kafka.offset", message.offset()),
    ]
}

/// A `store event` span for each row whose context was sampled, in that
/// trace (row index, span), linked to the batch span (the current span).
fn event_spans(batch: &Prepared) -> Vec<(usize, Span)> {
    if batch.contexts.is_empty() {
        return Vec::new();
    }
    let batch_context = telemetry::span_context(&Span::current());
    let mut spans = Vec::new();
    for (row, (event, &i)) in batch.rows.iter().zip(&batch.row_messages).enumerate() {
        let Some(context) = batch.contexts[i].as_ref().filter(|c| c.is_sampled()) else {
            continue;
        };
        let message = &batch.messages[i];
        let span = eventpipe_service::span!(
            parent: None,
            "store event",
            otel.kind = "consumer",
            eventpipe.event_id = %event.event_id,
            eventpipe.event_type = event.event_type.as_str(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
        );
        let _ = span.set_parent(telemetry::remote_parent(context.clone()));
        span.add_link(batch_context.clone());
        spans.push((row, span));
    }
    spans
}

type InFlight = JoinHandle<Outcome>;

/// How a batch takes its turn after the one before it: per lane, the
/// previous batch's writing of that lane (the same users) must be over
/// before this one's starts; and the previous batch's outcome, which its
/// commit must follow.
struct Turn {
    /// Per lane: resolves when the previous batch's lane is written.
    lanes_before: Vec<Option<oneshot::Receiver<()>>>,
    /// Per lane: resolved (dropped) when this batch's lane is written.
    lanes_done: Vec<oneshot::Sender<()>>,
    /// The previous batch's outcome: true when it was committed.
    before: Option<oneshot::Receiver<bool>>,
    /// This batch's outcome, for the next.
    done: oneshot::Sender<bool>,
}

/// Makes a batch durable, then commits its offsets, after the previous
/// batch's commit. Runs as its own task so the next batch can be fetched
/// and start writing meanwhile; committing here, not in the loop, means a
/// batch is committed as soon as it is durable even when no further
/// message arrives.
async fn make_durable_and_commit(
    worker: Arc<Worker>,
    batch: Prepared,
    stop: watch::Receiver<bool>,
    turn: Turn,
) -> Outcome {
    let span = batch_span(&worker, &batch);
    let Turn {
        lanes_before,
        lanes_done,
        before,
        done,
    } = turn;
    let mut outcome = process(&worker, &batch, &stop, lanes_before, lanes_done)
        .instrument(span)
        .await;
    // Offsets are committed in batch order: after the previous batch's.
    if let Some(before) = before
        && !before.await.unwrap_or(false)
    {
        outcome = Outcome::Abandoned;
    }
    match outcome {
        Outcome::Durable { .. } if worker.source.revocations() != batch.revocations => {
            // Partitions moved while this batch was read or written: its rows
            // are stored, and the new owner re-reads and skips them as
            // duplicates; committing now could move its offsets back.
            tracing::info!(
                messages = batch.messages.len(),
                "rebalance during the batch: offsets left to the partitions' owners"
            );
        }
        Outcome::Durable { .. } => {
            if let Err(e) = worker.source.commit(&batch.messages) {
                // The rows are stored; a failed commit only means they are
                // redelivered and skipped as duplicates.
                tracing::warn!(error = %e, "offset commit failed; the batch will be redelivered");
            }
        }
        Outcome::Abandoned => tracing::info!(
            messages = batch.messages.len(),
            "shutdown: batch abandoned uncommitted"
        ),
    }
    let _ = done.send(matches!(outcome, Outcome::Durable { .. }));
    outcome
}

/// Makes one batch durable on its own, with no batch before or after it
/// (a function's invocation: the platform commits, and hands over the
/// next batch only after this one); how many of its messages went to the
/// DLQ, or `None` when `stop` came first.
pub(crate) async fn make_durable(
    worker: &Worker,
    messages: Vec<Received>,
    stop: &watch::Receiver<bool>,
) -> Option<usize> {
    let lanes = worker.config.write_lanes.max(1);
    worker.metrics.consumed.inc_by(messages.len() as u64);
    worker.metrics.batch_messages.observe(messages.len() as f64);
    let batch = prepare(messages, worker.source.revocations(), lanes);
    let span = batch_span(worker, &batch);
    let lanes_done = (0..lanes).map(|_| oneshot::channel().0).collect();
    let lanes_before = (0..lanes).map(|_| None).collect();
    match process(worker, &batch, stop, lanes_before, lanes_done)
        .instrument(span)
        .await
    {
        Outcome::Durable { dead_lettered } => Some(dead_lettered),
        Outcome::Abandoned => None,
    }
}

/// Waits for a batch in flight; false when it was abandoned.
async fn settle(in_flight: InFlight) -> anyhow::Result<bool> {
    Ok(matches!(in_flight.await?, Outcome::Durable { .. }))
}

/// Batches written at once: while one finishes its slowest lane, the
/// next writes its other lanes.
const BATCHES_IN_FLIGHT: usize = 2;

/// Runs until `stop` turns true.
pub async fn run(worker: Arc<Worker>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = &worker.config;
    let lanes = config.write_lanes.max(1);
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    let mut lanes_before: Vec<Option<oneshot::Receiver<()>>> = (0..lanes).map(|_| None).collect();
    let mut before: Option<oneshot::Receiver<bool>> = None;
    loop {
        let batch = tokio::select! {
            batch = worker.source.next_batch(config.batch_size, config.batch_wait) => batch,
            _ = stop.wait_for(|s| *s) => break,
        };
        // A revoke after the batch's first message counts against it.
        let (batch, revocations) = match batch {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                continue;
            }
        };
        worker.metrics.consumed.inc_by(batch.len() as u64);
        worker.metrics.batch_messages.observe(batch.len() as f64);
        let prepared = prepare(batch, revocations, lanes);
        if in_flight.len() == BATCHES_IN_FLIGHT
            && let Some(oldest) = in_flight.pop_front()
            && !settle(oldest).await?
        {
            // Shutdown: the later batches cannot commit either.
            for later in in_flight {
                settle(later).await?;
            }
            return Ok(());
        }
        let mut lanes_done = Vec::with_capacity(lanes);
        let mut waits = Vec::with_capacity(lanes);
        for slot in &mut lanes_before {
            let (written, next) = oneshot::channel();
            lanes_done.push(written);
            waits.push(slot.replace(next));
        }
        let (done, outcome) = oneshot::channel();
        let turn = Turn {
            lanes_before: waits,
            lanes_done,
            before: before.replace(outcome),
            done,
        };
        in_flight.push_back(tokio::spawn(make_durable_and_commit(
            worker.clone(),
            prepared,
            stop.clone(),
            turn,
        )));
    }
    for batch in in_flight {
        settle(batch).await?;
    }
    Ok(())
}

/// Makes one batch durable.
async fn process(
    worker: &Worker,
    batch: &Prepared,
    stop: &watch::Receiver<bool>,
    lanes_before: Vec<Option<oneshot::Receiver<()>>>,
    lanes_done: Vec<oneshot::Sender<()>>,
) -> Outcome {
    let events = event_spans(batch);
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
            let store = || {
                store_rows(
                    worker,
                    &batch.rows[lane.clone()],
                    &batch.traces[lane.clone()],
                )
            };
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
        if let Some((_, span)) = events.iter().find(|(r, _)| *r == row) {
            span.set_status(Status::error(format!("refused by the database: {error}")));
        }
        poison.push((batch.row_messages[row], "refused_by_database", error));
    }
    drop(events);
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

/// The span of putting message `i` on the DLQ, linked to the context the
/// message came with.
fn dead_letter_span(
    worker: &Worker,
    batch: &Prepared,
    i: usize,
    reason: &str,
    error: &str,
) -> Span {
    if batch.contexts.is_empty() {
        return Span::none();
    }
    let message = &batch.messages[i];
    let span = eventpipe_service::child_span!(
        "dead_letter",
        otel.kind = "producer",
        messaging.destination.name = worker.config.dlq_topic.as_str(),
        eventpipe.dlq.reason = reason,
        messaging.destination.partition.id = message.partition(),
        messaging.kafka.offset = message.offset(),
    );
    span.set_status(Status::error(format!("{reason}: {error}")));
    if let Some(row) = batch.row_messages.iter().position(|&m| m == i) {
        span.set_attribute("eventpipe.event_id", batch.rows[row].event_id.to_string());
    }
    if let Some(context) = &batch.contexts[i] {
        span.add_link(context.clone());
    }
    span
}

/// Writes `rows` (evaluating the anomaly rules on the new ones, in the same
/// transaction); when the database refuses the batch for a data reason,
/// finds the refused rows one by one. Publishes the anomalies once the rows
/// are durable. Returns the refused rows' indexes.
async fn store_rows(
    worker: &Worker,
    rows: &[NewEvent],
    traces: &[Option<TraceHeaders>],
) -> Result<Vec<(usize, String)>, StoreError> {
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
            Some(detector.stage(rows.iter().map(|r| r.user_id.as_str())))
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
    let written = eventpipe_store::store_batch(
        &worker.pool,
        rows,
        worker.config.dedup_window,
        detection.as_mut().map(|d| d as &mut dyn WithinBatch),
    )
    .instrument(transaction.clone())
    .await;
    let (stored, refused) = match written {
        Ok(stored) => (stored, Vec::new()),
        Err(StoreError::Refused(reason)) => {
            tracing::warn!(%reason, rows = rows.len(), "batch refused; storing row by row");
            transaction.set_status(Status::error(format!("refused: {reason}")));
            let within = detection.as_mut().map(|d| d as &mut dyn WithinBatch);
            let one_by_one =
                eventpipe_service::child_span!("transaction per row", rows = rows.len());
            eventpipe_store::store_each(&worker.pool, rows, worker.config.dedup_window, within)
                .instrument(one_by_one)
                .await?
        }
        Err(e) => {
            transaction.set_status(Status::error(e.to_string()));
            return Err(e);
        }
    };
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
        let latency = (now - row.received_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(0);
        metrics.end_to_end.observe(latency as f64 / 1e6);
    }
    if !stored.anomalies.is_empty() {
        let received: std::collections::HashMap<_, _> =
            rows.iter().map(|r| (r.event_id, r.received_at)).collect();
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
    }
    if !stored.anomalies.is_empty() {
        let raised_by: std::collections::HashMap<_, _> = rows
            .iter()
            .zip(traces)
            .filter_map(|(r, t)| Some((r.event_id, t.as_ref()?)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, n: u128) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::from_u128(n),
            user_id: user.to_owned(),
            event_type: "click".to_owned(),
            source: "web".to_owned(),
            event_ts: Utc::now(),
            timestamp_raw: None,
            received_at: Utc::now(),
            payload: "{}".to_owned(),
            kafka_partition: 0,
            kafka_offset: i64::try_from(n).unwrap(),
        }
    }

    #[test]
    fn lanes_keep_each_users_events_together_in_batch_order() {
        let users = ["ann", "bob", "cy", "dee", "ed", "flo", "gus"];
        let rows: Vec<NewEvent> = (0..70u128)
            .map(|n| row(users[n as usize % users.len()], n))
            .collect();
        let messages: Vec<usize> = (0..70).collect();
        let traces = vec![None; 70];
        let (rows, messages, traces, lanes) = by_lane(rows, messages, traces, 3);
        assert_eq!((rows.len(), messages.len(), traces.len()), (70, 70, 70));
        assert_eq!(lanes.len(), 3, "a range per lane: {lanes:?}");
        assert!(
            lanes.iter().filter(|l| !l.is_empty()).count() >= 2,
            "{lanes:?}"
        );
        assert_eq!(lanes.iter().map(|l| l.len()).sum::<usize>(), 70);
        for lane in &lanes {
            let users: HashSet<&str> = rows[lane.clone()]
                .iter()
                .map(|r| r.user_id.as_str())
                .collect();
            for (other, range) in lanes.iter().enumerate().filter(|(_, r)| *r != lane) {
                assert!(
                    rows[range.clone()]
                        .iter()
                        .all(|r| !users.contains(r.user_id.as_str())),
                    "a user in two lanes ({other})"
                );
            }
            // Batch order within the lane; the message index follows its row.
            let offsets: Vec<i64> = rows[lane.clone()].iter().map(|r| r.kafka_offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        }
        for (row, message) in rows.iter().zip(&messages) {
            assert_eq!(row.kafka_offset, *message as i64);
        }
        assert_eq!(lane_of("ann", 3), lane_of("ann", 3));
    }

    #[test]
    fn one_lane_or_no_rows_changes_nothing() {
        let rows = vec![row("b", 1), row("a", 2)];
        let (rows, _, _, lanes) = by_lane(rows, vec![0, 1], vec![None, None], 1);
        assert_eq!(rows[0].user_id, "b");
        assert_eq!(lanes.len(), 1);
        assert_eq!(lanes[0], 0..2);
        let (_, _, _, lanes) = by_lane(Vec::new(), Vec::new(), Vec::new(), 4);
        assert!(lanes.len() == 4 && lanes.iter().all(|l| l.is_empty()));
    }
}
