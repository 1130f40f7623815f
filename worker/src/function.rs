//! The worker as an AWS Lambda function triggered by Kafka: an event
//! source mapping (Amazon MSK or self-managed Kafka) reads the events topic
//! and hands each batch to an invocation; `eventpipe-worker` runs this way
//! when Lambda's runtime API is there
//! ([`eventpipe_service::function::on_lambda`]).
//!
//! With `WORKER_FUNCTION_SERVES=http` it serves the worker's HTTP API
//! instead (the read side), through `lambda_http`.
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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, watch};

use crate::config::{FunctionServes, WorkerConfig};
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

/// Handles batches, or serves HTTP (`WORKER_FUNCTION_SERVES`), until the
/// platform stops the environment.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let serves = config.function_serves;
    let worker = start_as(config, false).await?;
    match serves {
        FunctionServes::Kafka => handle_batches(worker).await,
        FunctionServes::Http => serve_http(worker).await,
    }
}

/// The worker's HTTP API (the read side, health, readiness, metrics of
/// this environment) through `lambda_http`, the same router as the
/// server's.
async fn serve_http(worker: Arc<Worker>) -> anyhow::Result<()> {
    // Runs while the environment is thawed: keeps readiness current.
    tokio::spawn(crate::probe(worker.clone(), false));
    tracing::info!("eventpipe-worker serving its HTTP API as a Lambda function");
    lambda_http::run(crate::app(worker))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the Lambda runtime stopped")
}

/// What an environment's invocations share (one at a time).
struct Invocations {
    /// The anomalies committed lanes hand over for publication.
    queue: mpsc::Receiver<Publication>,
    /// When this environment last published anomalies left unpublished.
    swept: Option<Instant>,
}

/// Handles the event source mapping's batches.
async fn handle_batches(worker: Arc<Worker>) -> anyhow::Result<()> {
    let queue = worker
        .publications_queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .context("the anomaly publication queue was taken")?;
    let shared = Arc::new(Mutex::new(Invocations { queue, swept: None }));
    tracing::info!("eventpipe-worker handling Kafka batches as a Lambda function");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let (worker, shared) = (worker.clone(), shared.clone());
        async move { handle(&worker, &mut *shared.lock().await, event).await }
    }))
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("the Lambda runtime stopped")
}

/// One invocation.
async fn handle(
    worker: &Worker,
    shared: &mut Invocations,
    event: LambdaEvent<KafkaEvent>,
) -> Result<Handled, lambda_runtime::Error> {
    let messages = received(event.payload)?;
    let records = messages.len();
    if let Some(detector) = &worker.detector {
        detector.lock().await.0.forget();
    }
    let stop = give_up(worker.config.function_retry, event.context.deadline);
    let queue = &mut shared.queue;
    // A lane hands its anomalies over once its transaction committed;
    // they are published while the other lanes write (the queue is
    // bounded: waiting until the end could stall a batch of many lanes).
    let durable = pipeline::make_durable(worker, messages, &stop);
    tokio::pin!(durable);
    let made_durable = loop {
        tokio::select! {
            made = &mut durable => break made,
            Some(publication) = queue.recv() => pipeline::publish_traced(worker, &publication).await,
        }
    };
    while let Ok(publication) = queue.try_recv() {
        pipeline::publish_traced(worker, &publication).await;
    }
    let Some(dead_lettered) = made_durable else {
        tracing::warn!(
            records,
            "the batch is still not durable after WORKER_FUNCTION_RETRY_SECS (or near the deadline): failing it, the platform delivers it again"
        );
        return Err(format!(
            "the batch of {records} message(s) could not be made durable in time (PostgreSQL or the dead-letter topic kept failing); it will be delivered again"
        )
        .into());
    };
    // Publishing anomalies is at least once (the outbox): one that failed
    // does not fail the batch, and a later invocation's sweep (at most one
    // per SWEEP_EVERY, as the long-running worker's) publishes it.
    if worker.detector.is_some()
        && shared
            .swept
            .is_none_or(|at| at.elapsed() >= pipeline::SWEEP_EVERY)
    {
        shared.swept = Some(Instant::now());
        pipeline::sweep_once(worker).await;
    }
    Ok(Handled {
        records,
        dead_lettered,
    })
}

/// Turns true once the invocation has retried long enough: after
/// `WORKER_FUNCTION_RETRY_SECS`, or shortly before `deadline` (milliseconds
/// since the epoch) when that comes first, leaving time to answer. A
/// deadline already past is not one (cargo-lambda's emulator sends the
/// timeout itself, 600000), so the retry time alone bounds it.
fn give_up(retry: Duration, deadline: u64) -> watch::Receiver<bool> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let budget = match Duration::from_millis(deadline).checked_sub(now) {
        Some(left) if !left.is_zero() => {
            retry.min(left.saturating_sub((left / 10).max(Duration::from_secs(1))))
        }
        _ => retry,
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(budget) => { let _ = stop.send(true); }
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
    let offset = record.offset;
    let base64 = |field: &str, text: Option<String>| {
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|e| format!("offset {offset}: {field} is not base64: {e}"))
        })
        .transpose()
    };
    let key = base64("key", record.key)?;
    let value = base64("value", record.value)?;
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
        offset,
        timestamp_ms: record.timestamp.0.timestamp_millis(),
        key,
        value,
        headers,
    })
}

/// The event a Kafka event source mapping invokes the function with for
/// `messages` (what [`received`] decodes): records listed per
/// `topic-partition`, keys and values in base64, header values as arrays
/// of signed bytes. For invoking the function with messages of a topic
/// (tests, benchmarks, replaying by hand).
pub fn kafka_event(messages: &[Received]) -> serde_json::Value {
    let base64 =
        |bytes: Option<&[u8]>| bytes.map(|b| base64::engine::general_purpose::STANDARD.encode(b));
    let mut records: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        std::collections::BTreeMap::new();
    for m in messages {
        let headers: Vec<serde_json::Value> = m
            .headers()
            .into_iter()
            .map(|(name, value)| {
                let signed: Vec<i8> = value.iter().map(|&b| b as i8).collect();
                serde_json::json!({ name: signed })
            })
            .collect();
        records
            .entry(format!("{}-{}", m.topic(), m.partition()))
            .or_default()
            .push(serde_json::json!({
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": m.timestamp_ms().unwrap_or(0),
                "timestampType": "CREATE_TIME",
                "key": base64(m.key()),
                "value": base64(m.payload()),
                "headers": headers,
            }));
    }
    serde_json::json!({"eventSource": "SelfManagedKafka", "records": records})
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
    fn an_event_made_of_messages_decodes_to_the_same_messages() {
        let record = |partition, offset, value: &str| Record {
            topic: "events".to_owned(),
            partition,
            offset,
            timestamp_ms: 1_700_000_000_123,
            key: Some(b"user".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![("h".to_owned(), vec![0, 200, 255])],
        };
        let messages: Vec<Received> = vec![
            record(2, 5, "{\"a\":1}").into(),
            record(0, 9, "not json").into(),
        ];
        let event: KafkaEvent = serde_json::from_value(kafka_event(&messages)).unwrap();
        let again = received(event).unwrap();
        let seen = |m: &Received| {
            (
                m.topic().to_owned(),
                m.partition(),
                m.offset(),
                m.timestamp_ms(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                m.headers()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                    .collect::<Vec<_>>(),
            )
        };
        // aws_lambda_events reads the timestamp through a float: it may be
        // a millisecond off (the worker stores nothing from it).
        let close = |a: &Received, b: &Received| {
            let (mut a, mut b) = (seen(a), seen(b));
            let off = a.3.unwrap() - b.3.unwrap();
            (a.3, b.3) = (None, None);
            assert_eq!(a, b);
            assert!(off.abs() <= 1, "{off} ms off");
        };
        close(&again[0], &messages[1]);
        close(&again[1], &messages[0]);
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
