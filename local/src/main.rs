//! `eventpipe`: the whole pipeline on one machine with one command
//! (`cargo run --release` at the repository root). Starts an embedded Kafka
//! (librdkafka's mock cluster, topics created) unless
//! `KAFKA_BOOTSTRAP_SERVERS` names a real one, creates and migrates the
//! PostgreSQL database when needed, then runs the ingestion API and the
//! worker, and prints where everything is. Ctrl-C stops both cleanly.

use anyhow::Context;
use eventpipe_api::config::{ApiConfig, help as api_config_help};
use eventpipe_contract::kafka;
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_worker::config::{self as worker_config, WorkerConfig, redact_url};
use eventpipe_worker::db;

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
        print_help();
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
    let setting = |name: &str| match name {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
        // The embedded cluster was created with its topics already.
        "KAFKA_CREATE_TOPICS" if embedded.is_some() => Some("false".to_owned()),
        _ => std::env::var(name).ok(),
    };
    let api_config = ApiConfig::from_lookup(setting)?;
    let worker_config = WorkerConfig::from_lookup(setting)?;

    let database = redact_url(&worker_config.database_url);
    db::create_database_if_missing(&worker_config.database_url)
        .await
        .with_context(|| {
            format!(
                "PostgreSQL is not reachable at {database}: start it (e.g. `pg_ctlcluster 15 main start`) or set DATABASE_URL"
            )
        })?;
    db::migrate(&worker_config.database_url).await?;

    let api_listener = bind(api_config.addr, "API_ADDR").await?;
    let worker_listener = bind(worker_config.addr, "WORKER_ADDR").await?;
    let api = api_listener.local_addr()?;
    let worker = worker_listener.local_addr()?;
    let kind = if embedded.is_some() {
        "embedded"
    } else {
        "external"
    };
    println!();
    println!("  eventpipe is running");
    println!("  API          http://{api}/events");
    println!("  Swagger UI   http://{api}/docs");
    println!("  OpenAPI      http://{api}/openapi.json");
    println!("  API metrics  http://{api}/metrics");
    println!("  Worker       http://{worker}/ready, http://{worker}/metrics");
    println!("  PostgreSQL   {database}");
    println!("  Kafka        {bootstrap} ({kind})");
    println!("  Stop with Ctrl-C.");
    println!();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        eventpipe_service::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::try_join!(
        eventpipe_api::serve(api_config, api_listener, stopped(stop_rx.clone())),
        eventpipe_worker::serve(worker_config, worker_listener, stopped(stop_rx)),
    )?;
    drop(embedded);
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, var: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {var}={addr} (is another eventpipe running?)"))
}

fn print_help() {
    println!(
        "eventpipe: runs the pipeline locally: embedded Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), the API and the worker.\n"
    );
    println!("API:");
    print!("{}", api_config_help());
    println!("\nWorker:");
    print!("{}", worker_config::help());
    println!("\nEmbedded Kafka only (ignored when KAFKA_BOOTSTRAP_SERVERS is set):");
    for (name, default) in [
        ("KAFKA_DLQ_PARTITIONS", kafka::DLQ_PARTITIONS.to_string()),
        ("KAFKA_ANOMALIES_TOPIC", kafka::ANOMALIES_TOPIC.to_owned()),
        (
            "KAFKA_ANOMALIES_PARTITIONS",
            kafka::ANOMALIES_PARTITIONS.to_string(),
        ),
    ] {
        println!("  {name:<32}created in the embedded cluster [{default}]");
    }
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
