//! Batches in turn: one is written while the next is fetched, and each is
//! committed only after the one before it.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::durable::{Outcome, process};
use super::prepare::{Prepared, prepare};
use super::spans::batch_span;
use crate::source::Received;
use crate::state::Worker;

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
