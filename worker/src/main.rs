//! The `eventpipe-worker` binary: `migrate` applies pending migrations to
//! `DATABASE_URL` (the one way every start-up path migrates:
//! `eventpipe_store::migrate`), `openapi` prints the OpenAPI document,
//! `retention [--dry-run] [--json]` runs one maintenance pass (partitions,
//! retention) or lists what it would remove;
//! without arguments it consumes until Ctrl-C or SIGTERM, or handles Kafka
//! batches as an AWS Lambda function when run as one. `--help` lists the
//! environment variables.

use anyhow::Context;
use eventpipe_service::settings::print_out;
use eventpipe_worker::config::{self, WorkerConfig};
use eventpipe_worker::maintenance;

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("-h" | "--help") => {
            print_out(&format!(
                "eventpipe-worker: stores the events topic in PostgreSQL exactly once.

Usage: eventpipe-worker [migrate | openapi | retention [--dry-run] [--json]]

  migrate     apply pending migrations to DATABASE_URL
  openapi     print the OpenAPI document of the worker's HTTP API
  retention   make the partitions and remove what RETENTION_*_DAYS no longer keep,
              as the running workers do every WORKER_MAINTENANCE_INTERVAL_SECS;
              --dry-run lists what would be removed, --json prints JSON

{}",
                config::help()
            ))?;
            return Ok(());
        }
        Some("openapi") => {
            print_out(&eventpipe_worker::openapi::document_json())?;
            return Ok(());
        }
        Some("migrate") => {
            eventpipe_service::init_tracing();
            let url = config::database_url(|name| std::env::var(name).ok())?;
            let applied = eventpipe_store::migrate(url.expose()).await?;
            println!("{applied} migration(s) applied");
            return Ok(());
        }
        Some("retention") => {
            eventpipe_service::init_tracing();
            return retention(std::env::args().skip(2).collect()).await;
        }
        Some(other) => anyhow::bail!("unknown argument {other:?}; see --help"),
        None => {}
    }
    let telemetry = eventpipe_service::telemetry::init("eventpipe-worker")?;
    let config = WorkerConfig::from_env()?;
    if eventpipe_service::function::on_lambda() {
        let ran = eventpipe_worker::function::run(config).await;
        telemetry.shutdown();
        return ran;
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding WORKER_ADDR={}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "eventpipe-worker listening");
    let served =
        eventpipe_worker::serve(config, listener, eventpipe_service::shutdown_signal()).await;
    telemetry.shutdown();
    served
}

/// The `retention` command's flags.
#[derive(clap::Parser)]
#[command(name = "eventpipe-worker retention", no_binary_name = true)]
struct RetentionFlags {
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The `retention` command.
async fn retention(flags: Vec<String>) -> anyhow::Result<()> {
    let RetentionFlags { dry_run, json } = <RetentionFlags as clap::Parser>::try_parse_from(flags)
        .map_err(|e| {
            let said = e.to_string();
            let first = said.lines().next().unwrap_or_default();
            anyhow::anyhow!(
                "retention: {}; see --help",
                first.trim_start_matches("error: ")
            )
        })?;
    let lookup = |name: &str| std::env::var(name).ok();
    let url = config::database_url(lookup)?;
    let settings = config::maintenance_config(lookup)?;
    if dry_run {
        let plan = maintenance::dry_run(url.expose(), settings.retention).await?;
        if json {
            println!("{}", maintenance::plan_json(&plan));
        } else {
            print!("{}", maintenance::describe(settings.retention, &plan));
        }
        return Ok(());
    }
    let outcome = maintenance::pass(url.expose(), settings, chrono::Utc::now(), |_| {}).await?;
    let maintenance::Outcome::Done(report) = outcome else {
        anyhow::bail!(
            "another worker is running maintenance now (it holds the advisory lock); try again later"
        );
    };
    if json {
        let created: Vec<_> = report.created.iter().map(|(_, p)| p).collect();
        let removed: Vec<_> = report
            .removed
            .iter()
            .map(
                |r| serde_json::json!({"table": r.table, "partition": r.partition, "rows": r.rows}),
            )
            .collect();
        println!(
            "{}",
            serde_json::json!({"created": created, "removed": removed})
        );
        return Ok(());
    }
    for (_, partition) in &report.created {
        println!("created partition {partition}");
    }
    for r in &report.removed {
        match &r.partition {
            Some(p) => println!("dropped partition {p} of {} ({} rows)", r.table, r.rows),
            None => println!("deleted {} rows of {}", r.rows, r.table),
        }
    }
    if report.created.is_empty() && report.removed.is_empty() {
        println!("nothing to do: partitions are made and nothing has expired");
    }
    Ok(())
}
