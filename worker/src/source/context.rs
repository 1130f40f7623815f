//! What librdkafka calls back into: logs, errors and rebalances, and
//! where each assigned partition should continue (to notice offsets that
//! were never read).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventpipe_service::kafka as kafka_client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset};

use crate::metrics::Metrics;

/// Logs librdkafka and rebalances through `tracing`; remembers where each
/// assigned partition should continue, to notice offsets that were never
/// read.
pub struct SourceContext {
    metrics: Metrics,
    /// Bumped on every revoke; see [`Source::revocations`].
    pub(super) revocations: AtomicU64,
    /// The next offset expected from each assigned partition: its committed
    /// offset at assignment, then one past the last message read.
    expected: Mutex<HashMap<i32, i64>>,
}

impl SourceContext {
    /// A context counting in `metrics`, with nothing assigned yet.
    pub(super) fn new(metrics: Metrics) -> Self {
        SourceContext {
            metrics,
            revocations: AtomicU64::new(0),
            expected: Mutex::default(),
        }
    }

    fn expected(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i64>> {
        self.expected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that `offset` of `partition` was read. A jump past the
    /// expected offset means messages were skipped: the log no longer held
    /// them when the worker got there (retention deleted them while the
    /// worker lagged; the consumer then resets to the log start), which is
    /// data loss the operator must hear about.
    pub(super) fn read(&self, topic: &str, partition: i32, offset: i64) {
        let mut expected = self.expected();
        let next = expected.entry(partition).or_insert(offset);
        if offset > *next {
            let skipped = offset - *next;
            self.metrics
                .offsets_skipped
                .with_label_values(&[topic, &partition.to_string()])
                .inc_by(skipped as u64);
            tracing::error!(
                partition,
                from = *next,
                to = offset,
                skipped,
                "offsets skipped: the topic no longer held them when the worker got there (retention while lagging?); those events were not stored"
            );
        }
        *next = offset + 1;
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        kafka_client::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka_client::error(&error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Offsets are committed after every durable batch, so a revoke has
        // nothing durable left to commit but the batch being written, which
        // sees the bump and leaves its offsets alone (see Source::commit);
        // data not yet stored is redelivered to the partition's next owner.
        if let Rebalance::Revoke(partitions) = rebalance {
            self.revocations.fetch_add(1, Ordering::SeqCst);
            let mut expected = self.expected();
            for p in partitions.elements() {
                expected.remove(&p.partition());
            }
            drop(expected);
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions assigned");
            // Where the group left off: reading resumes there unless the
            // log no longer starts that early.
            match consumer.committed_offsets((*partitions).clone(), Duration::from_secs(10)) {
                Ok(committed) => {
                    // Nothing committed yet: reading starts at the log's
                    // start as it is now; whatever it loses after this
                    // was never read either.
                    let starts: Vec<(i32, i64)> = committed
                        .elements()
                        .iter()
                        .filter_map(|p| match p.offset() {
                            Offset::Offset(offset) => Some((p.partition(), offset)),
                            _ => consumer
                                .fetch_watermarks(p.topic(), p.partition(), Duration::from_secs(10))
                                .ok()
                                .map(|(low, _)| (p.partition(), low)),
                        })
                        .collect();
                    self.expected().extend(starts);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read committed offsets; skipped offsets go unnoticed until the first message")
                }
            }
        }
    }
}
