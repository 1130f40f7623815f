//! Start-up fails fast and says why: a missing topic the API may not
//! create, or no broker at the configured address.

use std::collections::HashMap;

use eventpipe_api::config::ApiConfig;
use eventpipe_embedded_kafka::EmbeddedKafka;

fn config(vars: &[(&str, &str)]) -> ApiConfig {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ApiConfig::from_lookup(|name| env.get(name).cloned()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_that_may_not_be_created_stops_start_up() {
    let kafka = EmbeddedKafka::start(1).unwrap();
    let bootstrap = kafka.bootstrap_servers();
    let config = config(&[
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("KAFKA_EVENTS_TOPIC", "nowhere"),
        ("KAFKA_CREATE_TOPICS", "false"),
    ]);
    let error = eventpipe_api::start(config)
        .await
        .err()
        .expect("start-up must fail");
    let message = format!("{error:#}");
    assert!(
        message.contains("\"nowhere\" (KAFKA_EVENTS_TOPIC) does not exist"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_named() {
    // A port nothing listens on: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let config = config(&[
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("KAFKA_CONNECT_TIMEOUT_MS", "1000"),
    ]);
    let error = eventpipe_api::start(config)
        .await
        .err()
        .expect("start-up must fail");
    let message = format!("{error:#}");
    assert!(
        message.contains(&format!(
            "cannot reach Kafka at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS)"
        )),
        "{message}"
    );
}

#[test]
fn every_documented_compression_builds_a_producer_and_typos_are_named() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let config = config(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9"),
            ("KAFKA_COMPRESSION", codec),
        ]);
        assert!(
            eventpipe_api::sink::EventSink::new(&config.kafka).is_ok(),
            "{codec}"
        );
    }
    let config = config(&[
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9"),
        ("KAFKA_COMPRESSION", "lzma"),
    ]);
    let error = eventpipe_api::sink::EventSink::new(&config.kafka)
        .err()
        .expect("lzma is no codec");
    assert!(
        format!("{error:#}").contains("KAFKA_COMPRESSION"),
        "{error:#}"
    );
}

#[test]
fn tls_and_sasl_are_built_in() {
    let config = config(&[
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9"),
        (
            "KAFKA_CONFIG",
            "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;sasl.username=u;sasl.password=p",
        ),
    ]);
    let sink = eventpipe_api::sink::EventSink::new(&config.kafka);
    assert!(sink.is_ok(), "{:#}", sink.err().unwrap());
}
