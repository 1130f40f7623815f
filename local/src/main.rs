//! `eventpipe`: the whole pipeline on one machine with one command
//! (`cargo run --release` at the repository root). Starts an embedded Kafka
//! (librdkafka's mock cluster, topics created) unless
//! `KAFKA_BOOTSTRAP_SERVERS` names a real one, creates and migrates the
//! PostgreSQL database when needed, then runs the ingestion API and the
//! worker, and prints where everything is. Ctrl-C stops both cleanly.

use eventpipe_api::config::help as api_config_help;
use eventpipe_local::{EMBEDDED_TOPICS, Pipeline};
use eventpipe_worker::config::{self as worker_config, redact_url};

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "-h" || a == "--help")
    {
        print_help();
        return Ok(());
    }
    let telemetry = eventpipe_service::telemetry::init("eventpipe")?;

    let pipeline = Pipeline::start(|name| std::env::var(name).ok()).await?;
    let (api, worker) = (pipeline.api, pipeline.worker);
    let kind = if pipeline.kafka_is_embedded() {
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
    println!(
        "  Analytics    http://{worker}/api/v1/analytics/counts/total (Swagger UI http://{worker}/docs)"
    );
    println!("  PostgreSQL   {}", redact_url(&pipeline.database_url));
    println!("  Kafka        {} ({kind})", pipeline.bootstrap);
    println!("  Load it      cargo run --release -p eventpipe-load -- --help");
    println!("  Stop with Ctrl-C.");
    println!();

    eventpipe_service::shutdown_signal().await;
    let stopped = pipeline.stop().await;
    telemetry.shutdown();
    stopped
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
    for (name_var, name, partitions_var, partitions) in EMBEDDED_TOPICS {
        if !matches!(name_var, "KAFKA_EVENTS_TOPIC" | "KAFKA_DLQ_TOPIC") {
            println!("  {name_var:<32}created in the embedded cluster [{name}]");
        }
        if partitions_var != "KAFKA_EVENTS_PARTITIONS" {
            println!("  {partitions_var:<32}created in the embedded cluster [{partitions}]");
        }
    }
}
