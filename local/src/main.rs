//! `eventpipe`: the whole pipeline on one machine with one command
//! (`cargo run --release` at the repository root). Starts an embedded Kafka
//! (librdkafka's mock cluster, topics created) unless
//! `KAFKA_BOOTSTRAP_SERVERS` names a real one, creates and migrates the
//! PostgreSQL database when needed, then runs the ingestion API and the
//! worker, and prints where everything is. Ctrl-C stops both cleanly.
//! `eventpipe status`, `db-stats`, `topics` and `dlq` are the operators'
//! commands ([`eventpipe_local::ops`]).

use eventpipe_api::config::help as api_config_help;
use eventpipe_local::Pipeline;
use eventpipe_local::ops::{self, LocalRun};
use eventpipe_service::settings::{HELP_NAME_WIDTH, print_out};
use eventpipe_worker::config::{self as worker_config, redact_url};

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            print_out(&help())?;
            return Ok(());
        }
        Some(command) if ops::COMMANDS.contains(&command) => {
            if args.iter().any(|a| a == "-h" || a == "--help") {
                print_out(&ops::help())?;
                return Ok(());
            }
            eventpipe_service::telemetry::init_command_logging();
            let status = ops::run(&args).await?;
            std::process::exit(status);
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; see --help"),
        None => {}
    }
    let telemetry = eventpipe_service::telemetry::init("eventpipe")?;

    // Ctrl-C is ours from now on, also while the pipeline starts (a
    // signal before the listener exists would kill the process outright).
    let (interrupted, mut interrupt) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        eventpipe_service::shutdown_signal().await;
        let _ = interrupted.send(());
    });
    tokio::task::yield_now().await;
    let pipeline = tokio::select! {
        pipeline = Pipeline::start(|name| std::env::var(name).ok()) => pipeline?,
        _ = &mut interrupt => {
            println!("  Interrupted while starting; nothing was accepted yet.");
            return Ok(());
        }
    };
    let (api, worker) = (pipeline.api, pipeline.worker);
    let recorded = LocalRun {
        pid: std::process::id(),
        api: format!("http://{api}"),
        worker: format!("http://{worker}"),
        database_url: pipeline.database_url.clone(),
        bootstrap: pipeline.bootstrap.clone(),
        embedded: pipeline.kafka_is_embedded(),
    }
    .record();
    if let Err(error) = recorded {
        tracing::warn!(%error, "the operations commands will not find this run without variables");
    }
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
    match pipeline.private_postgres() {
        Some(private) => println!(
            "  PostgreSQL   {} (private: nothing answered at {}; data in {}, stopped with the run)",
            redact_url(&pipeline.database_url),
            eventpipe_local::postgres::DEFAULT_ADDRESS,
            private.data_dir().display()
        ),
        None => println!("  PostgreSQL   {}", redact_url(&pipeline.database_url)),
    }
    println!("  Kafka        {} ({kind})", pipeline.bootstrap);
    println!("  Load it      cargo run --release -p eventpipe-load -- --help");
    println!(
        "  Inspect it   cargo run --release -- status   (also db-stats, topics, dlq list; --help)"
    );
    println!("  Stop with Ctrl-C.");
    println!();

    let _ = interrupt.await;
    LocalRun::forget();
    if pipeline.kafka_is_embedded() {
        println!(
            "  Stopping: no new events; the worker stores what was accepted (the embedded Kafka keeps nothing). Ctrl-C again to stop now."
        );
    }
    let stopped = pipeline
        .stop_draining(
            std::time::Duration::MAX,
            eventpipe_service::shutdown_signal(),
            |left| println!("  {left} accepted event(s) still to store"),
        )
        .await;
    telemetry.shutdown();
    let stopped = stopped?;
    if stopped.abandoned > 0 {
        eprintln!(
            "  Stopped with {} accepted event(s) not stored: they were in the embedded Kafka, which is gone.",
            stopped.abandoned
        );
    }
    Ok(())
}

fn help() -> String {
    format!(
        "eventpipe: runs the pipeline locally: embedded Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), the API and the worker.

Usage: eventpipe [COMMAND]  (no command: run the pipeline)

{ops}
API:
{api}
Worker:
{worker}
Embedded Kafka only (ignored when KAFKA_BOOTSTRAP_SERVERS is set; the topics are made with the worker's KAFKA_*_TOPIC and KAFKA_*_PARTITIONS):
  {linger:<HELP_NAME_WIDTH$}with the embedded cluster, the API's linger defaults to {linger_ms} ms (the broker shares the cores)
  {compression:<HELP_NAME_WIDTH$}with the embedded cluster, the API's compression defaults to {codec} (the broker is in this process)
  {backlog:<HELP_NAME_WIDTH$}with the embedded cluster, set to what it keeps per partition, {keeps} (higher is refused)
",
        ops = ops::help(),
        api = api_config_help(),
        worker = worker_config::help(),
        linger = "KAFKA_LINGER_MS",
        linger_ms = eventpipe_local::EMBEDDED_LINGER_MS,
        compression = "KAFKA_COMPRESSION",
        codec = eventpipe_local::EMBEDDED_COMPRESSION,
        backlog = "API_MAX_BACKLOG_BYTES",
        keeps = eventpipe_embedded_kafka::KEEPS_BYTES_PER_PARTITION,
    )
}
