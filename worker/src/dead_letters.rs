//! [`DlqWatermarks`]: how many messages the DLQ holds, from the broker's
//! watermarks, refreshed by the worker's probe loop so the read side's
//! summary answers from memory instead of waiting on the broker.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventpipe_query::DeadLetters;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;

/// Asks the broker through the worker's producer: the same connection
/// that writes to the DLQ, so no client of its own.
pub struct DlqWatermarks {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
    last: Mutex<Option<(u64, DateTime<Utc>)>>,
}

impl DlqWatermarks {
    /// Counts `topic` through `producer`, each broker request taking at
    /// most `timeout`. Holds nothing until the first [`Self::refresh`].
    pub fn new(producer: FutureProducer, topic: String, timeout: Duration) -> Self {
        DlqWatermarks {
            producer,
            topic,
            timeout,
            last: Mutex::new(None),
        }
    }

    /// Asks the broker again (blocking its thread: librdkafka's metadata
    /// and offset requests are synchronous); keeps the last count when it
    /// does not answer.
    pub fn refresh(&self) {
        match self.count() {
            Ok(held) => {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((held, Utc::now()));
            }
            Err(error) => {
                tracing::debug!(%error, topic = %self.topic, "could not count the DLQ");
            }
        }
    }

    fn count(&self) -> Result<u64, String> {
        let client = self.producer.client();
        let timeout = Timeout::After(self.timeout);
        let metadata = client
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| format!("reading {}'s metadata: {e}", self.topic))?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        let mut held = 0u64;
        for partition in 0..partitions {
            let partition = i32::try_from(partition).unwrap_or(i32::MAX);
            let (low, high) = client
                .fetch_watermarks(&self.topic, partition, timeout)
                .map_err(|e| format!("reading {}[{partition}]'s offsets: {e}", self.topic))?;
            held += u64::try_from(high - low).unwrap_or(0);
        }
        Ok(held)
    }
}

impl DeadLetters for DlqWatermarks {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn held(&self) -> Option<(u64, DateTime<Utc>)> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}
