//! The `eventpipe-api` binary: reads configuration from the environment and
//! serves until Ctrl-C or SIGTERM, or serves Lambda invocations when run
//! as an AWS Lambda function. `--help` lists the variables; `openapi`
//! prints the OpenAPI document.

use anyhow::Context;
use eventpipe_api::config::{self, ApiConfig};
use eventpipe_service::settings::print_out;

/// glibc malloc is a measurable share of the hot path; mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("-h" | "--help") => {
            print_out(&format!(
                "eventpipe-api: validates events and produces them to Kafka.\n\nUsage: eventpipe-api [openapi]\n\n{}",
                config::help()
            ))?;
            return Ok(());
        }
        Some("openapi") => {
            print_out(&eventpipe_api::openapi::document_json())?;
            return Ok(());
        }
        Some(other) => anyhow::bail!("unknown argument {other:?}; see --help"),
        None => {}
    }
    let telemetry = eventpipe_service::telemetry::init("eventpipe-api")?;
    let config = ApiConfig::from_env()?;
    if eventpipe_service::function::on_lambda() {
        let ran = eventpipe_api::function::run(config).await;
        telemetry.shutdown();
        return ran;
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding API_ADDR={}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "eventpipe-api listening");
    let served = eventpipe_api::serve(config, listener, eventpipe_service::shutdown_signal()).await;
    telemetry.shutdown();
    served
}
