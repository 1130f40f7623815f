//! The `eventpipe-worker` binary: `migrate` applies pending migrations to
//! `DATABASE_URL` (the one way every start-up path migrates:
//! `eventpipe_store::migrate`), `openapi` prints the OpenAPI document;
//! without arguments it consumes until Ctrl-C or SIGTERM. `--help` lists the
//! environment variables.

use anyhow::Context;
use eventpipe_worker::config::{self, WorkerConfig};

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("-h" | "--help") => {
            println!("eventpipe-worker: stores the events topic in PostgreSQL exactly once.\n");
            println!("Usage: eventpipe-worker [migrate | openapi]\n");
            print!("{}", config::help());
            return Ok(());
        }
        Some("openapi") => {
            print!("{}", eventpipe_worker::openapi::document_json());
            return Ok(());
        }
        Some("migrate") => {
            eventpipe_service::init_tracing();
            let url = config::database_url(|name| std::env::var(name).ok())?;
            let applied = eventpipe_store::migrate(&url).await?;
            println!("{applied} migration(s) applied");
            return Ok(());
        }
        Some(other) => anyhow::bail!("unknown argument {other:?}; see --help"),
        None => {}
    }
    eventpipe_service::init_tracing();
    let config = WorkerConfig::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding WORKER_ADDR={}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "eventpipe-worker listening");
    eventpipe_worker::serve(config, listener, eventpipe_service::shutdown_signal()).await
}
