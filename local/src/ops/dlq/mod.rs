//! `eventpipe dlq list` and `eventpipe dlq redrive`: what the dead-letter
//! topic holds and why, and putting chosen messages back on the events
//! topic once their cause is fixed.
//!
//! A redrive copies the message (key, value, the headers it came with) to
//! the events topic with an `eventpipe-redriven-from` header naming the DLQ
//! message, waits for Kafka's acknowledgement, then records the DLQ
//! message in `dlq_redrives`, so a second run skips it. The event keeps its
//! id, so whatever happens the worker stores it once. If it fails again,
//! the worker puts it back on the DLQ with the header still on it: a new
//! DLQ message that redrive leaves alone (not a loop) unless asked with
//! `--include-redriven`.
//!
//! [`letters`] reads the DLQ (`dlq list`); [`redrive`] puts messages back.

mod letters;
mod redrive;

pub use letters::{DeadLetter, DlqList, list};
pub use redrive::{Outcome, RedriveReport, redrive};
