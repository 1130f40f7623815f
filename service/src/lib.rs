//! What every eventpipe service process shares: typed settings read from
//! environment variables ([`settings`]), the Prometheus exposition
//! ([`metrics`]), Kafka client basics ([`kafka`]), the HTTP plumbing both
//! servers share ([`http`]), logging set-up, and the shutdown signal. Each service keeps its own typed config struct and its own list
//! of variables; this crate holds only the mechanism.

pub mod http;
pub mod kafka;
pub mod metrics;
pub mod settings;

/// Sets up logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json`
/// switches to one JSON object per line.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
