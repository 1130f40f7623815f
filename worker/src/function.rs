//! The worker as an AWS Lambda function triggered by Kafka: an event
//! source mapping (Amazon MSK or self-managed Kafka) reads the events topic
//! and hands each batch to an invocation; `eventpipe-worker` runs this way
//! when Lambda's runtime API is there
//! ([`eventpipe_service::function::on_lambda`]).
//!
//! An invocation is one batch of the long-running worker: decoded, poison
//! messages on the DLQ, the rows, rules and rollups written in one
//! transaction per lane, the anomalies published after. It succeeds only
//! once all of that is durable; otherwise it fails and the platform
//! delivers the same batch again, which the idempotent write stores
//! exactly once, as a redelivery after a crash is. The mapping commits the
//! offsets, so this worker never joins the consumer group.
//!
//! The platform may move a partition to another execution environment at
//! any time, so per-user anomaly state is rebuilt from PostgreSQL for each
//! batch, as after a rebalance.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, watch};

use crate::config::WorkerConfig;
use crate::pipeline;
use crate::source::{Received, Record};
use crate::state::{Publication, Worker, start_as};

/// What an invocation reports (the platform needs only its success).
#[derive(Debug, Serialize)]
pub struct Handled {
    /// Messages in the batch.
    pub records: usize,
    /// Of those, put on the dead-letter topic.
    pub dead_lettered: usize,
}

/// Handles batches until the platform stops the environment.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let worker = start_as(config, false).await?;
    let queue = worker
        .publications_queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .context("the anomaly publication queue was taken")?;
    let queue = Arc::new(Mutex::new(queue));
    tracing::info!("eventpipe-worker handling Kafka batches as a Lambda function");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let (worker, queue) = (worker.clone(), queue.clone());
        async move { handle(&worker, &queue, event).await }
    }))
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("the Lambda runtime stopped")
}

/// One invocation.
async fn handle(
    worker: &Worker,
    queue: &Mutex<mpsc::Receiver<Publication>>,
    event: LambdaEvent<KafkaEvent>,
) -> Result<Handled, lambda_runtime::Error> {
    let messages = received(event.payload)?;
    let records = messages.len();
    if let Some(detector) = &worker.detector {
        detector.lock().await.0.forget();
    }
    let stop = stop_before(event.context.deadline);
    let Some(dead_lettered) = pipeline::make_durable(worker, messages, &stop).await else {
        tracing::warn!(
            records,
            "the batch is not durable and the invocation's time is nearly up: failing it, the platform delivers it again"
        );
        return Err(format!(
            "the batch of {records} message(s) could not be made durable in time (PostgreSQL or the dead-letter topic kept failing); it will be delivered again"
        )
        .into());
    };
    // Anomalies of this batch are stored; publishing them is at least once
    // (the outbox), so a failure here does not fail the batch.
    let mut queue = queue.lock().await;
    while let Ok(publication) = queue.try_recv() {
        pipeline::publish_traced(worker, &publication).await;
    }
    drop(queue);
    if worker.detector.is_some() {
        pipeline::sweep_once(worker).await;
    }
    Ok(Handled {
        records,
        dead_lettered,
    })
}

/// Resolves to true shortly before `deadline` (milliseconds since the
/// epoch), leaving the invocation time to answer.
fn stop_before(deadline: u64) -> watch::Receiver<bool> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_millis(deadline).saturating_sub(now);
    let margin = (left / 10).max(Duration::from_secs(1));
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(left.saturating_sub(margin)) => { let _ = stop.send(true); }
            () = stop.closed() => {}
        }
    });
    stopped
}

/// The batch's messages, partition by partition in offset order.
fn received(event: KafkaEvent) -> Result<Vec<Received>, lambda_runtime::Error> {
    let mut partitions: Vec<(String, Vec<KafkaRecord>)> = event.records.into_iter().collect();
    partitions.sort_by(|a, b| a.0.cmp(&b.0));
    let mut messages = Vec::new();
    for (name, mut records) in partitions {
        records.sort_by_key(|r| r.offset);
        for record in records {
            let record = decode(record, &name)
                .map_err(|e| format!("the Kafka event's records of {name:?}: {e}"))?;
            messages.push(Received::from(record));
        }
    }
    Ok(messages)
}

/// A record as the platform sends it: key and value in base64, header
/// values as arrays of signed bytes, the topic in the record or in the
/// name of its partition's list (`topic-partition`).
fn decode(record: KafkaRecord, list: &str) -> Result<Record, String> {
    let base64 = |field: &str, text: Option<String>| {
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|e| format!("offset {}: {field} is not base64: {e}", record.offset))
        })
        .transpose()
    };
    let key = base64("key", record.key.clone())?;
    let value = base64("value", record.value.clone())?;
    let topic = match record.topic {
        Some(topic) => topic,
        None => list
            .rsplit_once('-')
            .map_or(list, |(topic, _)| topic)
            .to_owned(),
    };
    let partition = i32::try_from(record.partition)
        .map_err(|_| format!("partition {} is out of range", record.partition))?;
    let headers = record
        .headers
        .into_iter()
        .flat_map(|map| map.into_iter())
        .map(|(name, bytes)| (name, bytes.into_iter().map(|b| b as u8).collect()))
        .collect();
    Ok(Record {
        topic,
        partition,
        offset: record.offset,
        timestamp_ms: record.timestamp.0.timestamp_millis(),
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_decoded_as_the_platform_encodes_them() {
        let event: KafkaEvent = serde_json::from_value(serde_json::json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": "b-1:9092",
            "records": {
                "events-1": [
                    {"topic": "events", "partition": 1, "offset": 8, "timestamp": 1_700_000_000_000_i64,
                     "timestampType": "CREATE_TIME", "key": "dQ==", "value": "e30=",
                     "headers": [{"eventpipe-schema-version": [49]}, {"t": [-1, 0]}]},
                    {"topic": "events", "partition": 1, "offset": 7, "timestamp": 1_700_000_000_000_i64,
                     "timestampType": "CREATE_TIME", "key": null, "value": "e30=", "headers": []}
                ],
                "events-0": [
                    {"partition": 0, "offset": 3, "timestamp": 1_700_000_000_000_i64,
                     "timestampType": "CREATE_TIME", "value": "e30=", "headers": []}
                ]
            }
        }))
        .unwrap();
        let messages = received(event).unwrap();
        let at: Vec<(i32, i64)> = messages
            .iter()
            .map(|m| (m.partition(), m.offset()))
            .collect();
        assert_eq!(at, [(0, 3), (1, 7), (1, 8)]);
        assert_eq!(messages[2].payload(), Some(&b"{}"[..]));
        assert_eq!(messages[2].schema_version(), Some(&b"1"[..]));
        assert_eq!(messages[0].payload(), Some(&b"{}"[..]));
    }

    #[test]
    fn a_record_that_is_not_base64_is_refused_naming_it() {
        let event: KafkaEvent = serde_json::from_value(serde_json::json!({
            "records": {"events-0": [{"partition": 0, "offset": 5, "timestamp": 0,
                "value": "not base64!", "headers": []}]}
        }))
        .unwrap();
        let error = received(event).err().unwrap().to_string();
        assert!(
            error.contains("\"events-0\"") && error.contains("offset 5: value is not base64"),
            "{error}"
        );
    }
}
