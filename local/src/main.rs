//! `eventpipe`: the whole pipeline on one machine with one command
//! (`cargo run --release` at the repository root). Starts an embedded Kafka
//! (librdkafka's mock cluster, topics created) unless
//! `KAFKA_BOOTSTRAP_SERVERS` names a real one, then the ingestion API, and
//! prints where everything is. Ctrl-C stops it cleanly.

use anyhow::Context;
use eventpipe_api::config::{self, ApiConfig};
use eventpipe_contract::kafka;
use eventpipe_embedded_kafka::EmbeddedKafka;

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Brokers in the embedded cluster: enough for `acks=all` to mean something.
const EMBEDDED_BROKERS: i32 = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "-h" || a == "--help")
    {
        println!(
            "eventpipe: runs the pipeline locally (embedded Kafka unless KAFKA_BOOTSTRAP_SERVERS is set).\n"
        );
        print!("{}", config::help());
        println!("Embedded Kafka only (ignored when KAFKA_BOOTSTRAP_SERVERS is set):");
        for (name, default) in [
            ("KAFKA_DLQ_TOPIC", kafka::DLQ_TOPIC.to_owned()),
            ("KAFKA_DLQ_PARTITIONS", kafka::DLQ_PARTITIONS.to_string()),
            ("KAFKA_ANOMALIES_TOPIC", kafka::ANOMALIES_TOPIC.to_owned()),
            (
                "KAFKA_ANOMALIES_PARTITIONS",
                kafka::ANOMALIES_PARTITIONS.to_string(),
            ),
        ] {
            println!("  {name:<32}created in the embedded cluster [{default}]");
        }
        return Ok(());
    }
    eventpipe_service::init_tracing();

    let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let embedded = match external {
        Some(_) => None,
        None => Some(start_embedded_kafka()?),
    };
    let bootstrap = match &embedded {
        Some(kafka) => kafka.bootstrap_servers(),
        None => external.unwrap_or_default(),
    };
    let config = ApiConfig::from_lookup(|name| match name {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
        // The embedded cluster was created with its topics already.
        "KAFKA_CREATE_TOPICS" if embedded.is_some() => Some("false".to_owned()),
        _ => std::env::var(name).ok(),
    })?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| {
            format!(
                "binding API_ADDR={} (is another eventpipe running?)",
                config.addr
            )
        })?;
    let addr = listener.local_addr()?;
    let kind = if embedded.is_some() {
        "embedded"
    } else {
        "external"
    };
    println!();
    println!("  eventpipe is running");
    println!("  API          http://{addr}/events");
    println!("  Swagger UI   http://{addr}/docs");
    println!("  OpenAPI      http://{addr}/openapi.json");
    println!("  Metrics      http://{addr}/metrics");
    println!("  Kafka        {bootstrap} ({kind})");
    println!("  Stop with Ctrl-C.");
    println!();
    eventpipe_api::serve(config, listener, eventpipe_service::shutdown_signal()).await?;
    drop(embedded);
    Ok(())
}

/// Starts the in-process cluster with the topics the services use, named
/// and sized as configured.
fn start_embedded_kafka() -> anyhow::Result<EmbeddedKafka> {
    let kafka = EmbeddedKafka::start(EMBEDDED_BROKERS)?;
    let setting =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let topics = [
        (
            "KAFKA_EVENTS_TOPIC",
            kafka::EVENTS_TOPIC,
            "KAFKA_EVENTS_PARTITIONS",
            kafka::EVENTS_PARTITIONS,
        ),
        (
            "KAFKA_DLQ_TOPIC",
            kafka::DLQ_TOPIC,
            "KAFKA_DLQ_PARTITIONS",
            kafka::DLQ_PARTITIONS,
        ),
        (
            "KAFKA_ANOMALIES_TOPIC",
            kafka::ANOMALIES_TOPIC,
            "KAFKA_ANOMALIES_PARTITIONS",
            kafka::ANOMALIES_PARTITIONS,
        ),
    ];
    for (name_var, name, partitions_var, partitions) in topics {
        let partitions = setting(partitions_var, &partitions.to_string())
            .parse()
            .with_context(|| format!("{partitions_var} must be a whole number"))?;
        kafka.create_topic(&setting(name_var, name), partitions)?;
    }
    Ok(kafka)
}
