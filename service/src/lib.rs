//! What every eventpipe service process shares: typed settings read from
//! environment variables ([`settings`]), the Prometheus exposition
//! ([`metrics`]), Kafka client basics ([`kafka`]) and
//! producer health ([`producer_health`]), whether it runs as a function
//! ([`function`]), the HTTP plumbing both
//! servers share ([`http`]), logging and trace export ([`telemetry`]), and the shutdown signal. Each service keeps its own typed config struct and its own list
//! of variables; this crate holds only the mechanism.

pub mod function;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod producer_health;
pub mod settings;
pub mod telemetry;

/// Sets up logging only: `RUST_LOG` filters (default `info`),
/// `LOG_FORMAT=json` switches to one JSON object per line. Services call
/// [`telemetry::init`], which also sets up trace export.
pub fn init_tracing() {
    telemetry::init_logging();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
