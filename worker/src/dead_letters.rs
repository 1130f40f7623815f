//! [`DlqWatermarks`]: how many messages the DLQ holds, from the broker's
//! watermarks, for the read side's summary.

use std::time::Duration;

use eventpipe_query::DeadLetters;
use futures::future::BoxFuture;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;

/// Asks the broker through the worker's producer: the same connection
/// that writes to the DLQ, so no client of its own.
pub struct DlqWatermarks {
    /// The worker's producer (a handle: clones share one client).
    pub producer: FutureProducer,
    /// `KAFKA_DLQ_TOPIC`.
    pub topic: String,
    /// How long each broker request may take.
    pub timeout: Duration,
}

impl DeadLetters for DlqWatermarks {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn held(&self) -> BoxFuture<'static, Result<u64, String>> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let timeout = Timeout::After(self.timeout);
        // librdkafka's metadata and offset requests block their thread.
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let client = producer.client();
                let metadata = client
                    .fetch_metadata(Some(&topic), timeout)
                    .map_err(|e| format!("reading {topic}'s metadata: {e}"))?;
                let partitions = metadata
                    .topics()
                    .first()
                    .map_or(0, |t| t.partitions().len());
                let mut held = 0u64;
                for partition in 0..partitions {
                    let partition = i32::try_from(partition).unwrap_or(i32::MAX);
                    let (low, high) = client
                        .fetch_watermarks(&topic, partition, timeout)
                        .map_err(|e| format!("reading {topic}[{partition}]'s offsets: {e}"))?;
                    held += u64::try_from(high - low).unwrap_or(0);
                }
                Ok(held)
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}
