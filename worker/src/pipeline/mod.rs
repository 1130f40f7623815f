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
//!
//! One job per file: [`prepare`] decodes a batch and splits it into write
//! lanes, [`order`] runs batches in turn and commits them, [`durable`]
//! makes one durable (rows, DLQ, retries), [`publish`] puts committed
//! anomalies on their topic (and sweeps the outbox), [`spans`] traces it.

mod durable;
mod order;
mod prepare;
mod publish;
mod spans;

pub(crate) use order::make_durable;
pub use order::run;
pub use prepare::lane_of;
pub(crate) use publish::{SWEEP_EVERY, publish_traced, sweep_once};
pub use publish::{publish_committed, sweep_unpublished};
