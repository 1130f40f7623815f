//! The byte bound charges each event the most it can take in a
//! partition's log (`eventpipe_service::kafka::stored_bytes_bound`). Here
//! that claim meets the embedded broker, which deletes the oldest batches
//! once a partition holds more than 5 MiB: records whose bounds add up to
//! just under 5 MiB, with values compression cannot shrink, are all still
//! there, for every codec, one record per batch and many. The control:
//! counting only the values' bytes, the broker does delete.

use std::time::Duration;

use eventpipe_embedded_kafka::{EmbeddedKafka, KEEPS_BYTES_PER_PARTITION};
use eventpipe_service::kafka::stored_bytes_bound;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const HEADERS: [(&str, &str); 3] = [
    ("eventpipe-schema-version", "1"),
    (
        "eventpipe-request-id",
        "0192f1a0-7c1e-7aa0-9c1e-000000000000",
    ),
    ("content-type", "application/json"),
];

/// Random bytes: nothing for a compressor to find.
fn noise(len: usize) -> Vec<u8> {
    (0..len.div_ceil(16))
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .take(len)
        .collect()
}

/// Produces to a fresh one-partition topic, with `compression` and at
/// most `per_batch` records per batch, records until the next would take
/// `counted` past what the partition keeps; the partition's low watermark
/// afterwards (0: nothing deleted).
fn fill(compression: &str, per_batch: u32, counted: impl Fn(usize, usize) -> u64) -> i64 {
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic("t", 1).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("batch.num.messages", per_batch.to_string())
        .set("batch.size", (256 * 1024).to_string())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut total = 0;
    let mut n = 0usize;
    loop {
        let key = format!("user-{}", n % 7);
        let value = noise(100 + (n * 7919) % 3000);
        let charge = counted(key.len(), value.len());
        if total + charge > KEEPS_BYTES_PER_PARTITION {
            break;
        }
        total += charge;
        let headers = HEADERS.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(*v),
            })
        });
        let record = BaseRecord::to("t")
            .key(&key)
            .payload(&value)
            .headers(headers);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
        n += 1;
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks("t", 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!(high, i64::try_from(n).unwrap());
    low
}

#[test]
fn records_within_the_bound_are_all_kept_whatever_the_codec() {
    let headers = || HEADERS.iter().map(|(k, v)| (k.len(), v.len()));
    for compression in ["none", "lz4", "zstd", "gzip", "snappy"] {
        for per_batch in [1, 10_000] {
            let low = fill(compression, per_batch, |key, value| {
                stored_bytes_bound(key, value, headers(), compression)
            });
            assert_eq!(low, 0, "{compression}, {per_batch} per batch: deleted");
        }
    }
}

#[test]
fn counting_the_values_alone_the_broker_deletes() {
    let low = fill("none", 10_000, |_, value| value as u64 + 1);
    assert!(low > 0, "nothing deleted: the keep is larger than assumed");
}
