//! Phase 1: the raw rdkafka produce rate for the exact messages the API
//! would produce, with the API's producer settings: the ceiling.

use super::*;

/// Counts failed deliveries; the cheapest possible delivery handling.
struct CountFailures(Arc<AtomicU64>);

impl ClientContext for CountFailures {}

impl ProducerContext for CountFailures {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces `n` messages shaped exactly like the API's with the API's
/// producer settings as fast as rdkafka allows (no per-message future:
/// enqueue everything, then flush), and checks every one was acknowledged.
pub(crate) fn raw_produce(bootstrap: &str, values: &[(String, Vec<u8>)], n: usize) -> Duration {
    let failures = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<CountFailures> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(CountFailures(failures.clone()))
        .unwrap();
    let started = Instant::now();
    for i in 0..n {
        let (key, value) = &values[i % values.len()];
        loop {
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header {
                    key: "eventpipe-schema-version",
                    value: Some("1"),
                })
                .insert(Header {
                    key: "eventpipe-request-id",
                    value: Some("01a208af-a42a-7758-a5af-e48e2bbf2254"),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                });
            let record = BaseRecord::to(TOPIC)
                .key(key.as_bytes())
                .payload(value)
                .headers(headers);
            match producer.send(record) {
                Ok(()) => break,
                // Queue full: let deliveries drain it.
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "some messages were not acknowledged"
    );
    elapsed
}
