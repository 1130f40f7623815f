//! The whole pipeline in one process: an embedded Kafka (librdkafka's mock
//! cluster, topics created) unless a real one is configured, the PostgreSQL
//! database created and migrated when needed, the ingestion API and the
//! worker. The `eventpipe` binary runs it until Ctrl-C; the load generator's
//! tests start one per test with their own database and ports.

pub mod ops;
pub mod postgres;

use std::net::SocketAddr;

use anyhow::Context;
use eventpipe_api::config::ApiConfig;
use eventpipe_contract::kafka;
use eventpipe_embedded_kafka::EmbeddedKafka;
use eventpipe_store as db;
use eventpipe_worker::config::{WorkerConfig, redact_url};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The API's `linger.ms` against the embedded cluster, unless
/// `KAFKA_LINGER_MS` says otherwise (docs/BENCHMARKS.md: with the broker
/// in-process, 0 halved what the whole pipeline stored).
pub const EMBEDDED_LINGER_MS: &str = "5";

/// Brokers in the embedded cluster: enough for `acks=all` to mean something.
const EMBEDDED_BROKERS: i32 = 3;

/// Topics created in the embedded cluster: (name variable, default name,
/// partitions variable, default partitions).
pub const EMBEDDED_TOPICS: [(&str, &str, &str, i32); 3] = [
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

/// A running pipeline. Dropped without [`Pipeline::stop`], its services run
/// on until the runtime ends (as in a test).
pub struct Pipeline {
    /// Where the API listens.
    pub api: SocketAddr,
    /// Where the worker listens.
    pub worker: SocketAddr,
    /// The database the worker writes (with its password, if any).
    pub database_url: String,
    /// The Kafka bootstrap servers both services use.
    pub bootstrap: String,
    embedded: Option<EmbeddedKafka>,
    postgres: Option<postgres::PrivatePostgres>,
    stop: watch::Sender<bool>,
    services: JoinHandle<anyhow::Result<()>>,
}

impl Pipeline {
    /// Starts everything, reading settings through `setting` (the process
    /// environment in the binary). Returns once both services listen.
    pub async fn start(setting: impl Fn(&str) -> Option<String> + Clone) -> anyhow::Result<Self> {
        let external = setting("KAFKA_BOOTSTRAP_SERVERS").filter(|s| !s.trim().is_empty());
        let embedded = match external {
            Some(_) => None,
            None => Some(start_embedded_kafka(setting.clone())?),
        };
        let bootstrap = match &embedded {
            Some(kafka) => kafka.bootstrap_servers(),
            None => external.unwrap_or_default(),
        };
        let is_embedded = embedded.is_some();
        // No DATABASE_URL and nothing at the default address: a private server.
        let private = match setting("DATABASE_URL").filter(|s| !s.trim().is_empty()) {
            None if !postgres::answers(postgres::DEFAULT_ADDRESS) => Some(
                postgres::PrivatePostgres::start(&postgres::default_data_dir())?,
            ),
            _ => None,
        };
        let private_url = private.as_ref().map(|p| p.url("eventpipe"));
        let lookup = |name: &str| match name {
            "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
            "DATABASE_URL" if private_url.is_some() => private_url.clone(),
            // The embedded cluster was created with its topics already.
            "KAFKA_CREATE_TOPICS" if is_embedded => Some("false".to_owned()),
            // The embedded broker shares the cores with the worker: a
            // produce request per event (linger 0, the API's default for a
            // broker of its own) would starve the worker. Batch instead.
            "KAFKA_LINGER_MS" if is_embedded => {
                setting(name).or_else(|| Some(EMBEDDED_LINGER_MS.to_owned()))
            }
            _ => setting(name),
        };
        let api_config = ApiConfig::from_lookup(lookup)?;
        let worker_config = WorkerConfig::from_lookup(lookup)?;

        let database_url = worker_config.database_url.clone();
        db::create_database_if_missing(&database_url)
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL is not reachable at {}: start it (e.g. `pg_ctlcluster 15 main start`) or set DATABASE_URL",
                    redact_url(&database_url)
                )
            })?;
        db::migrate(&database_url).await?;

        let api_listener = bind(api_config.addr, "API_ADDR").await?;
        let worker_listener = bind(worker_config.addr, "WORKER_ADDR").await?;
        let api = api_listener.local_addr()?;
        let worker = worker_listener.local_addr()?;

        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let services = tokio::spawn(async move {
            tokio::try_join!(
                eventpipe_api::serve(api_config, api_listener, stopped(stop_rx.clone())),
                eventpipe_worker::serve(worker_config, worker_listener, stopped(stop_rx)),
            )?;
            Ok(())
        });
        Ok(Self {
            api,
            worker,
            database_url,
            bootstrap,
            embedded,
            postgres: private,
            stop,
            services,
        })
    }

    /// The private PostgreSQL this run started, if it did.
    pub fn private_postgres(&self) -> Option<&postgres::PrivatePostgres> {
        self.postgres.as_ref()
    }

    /// Whether Kafka is the in-process mock cluster.
    pub fn kafka_is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stops both services gracefully (in-flight requests finish, the
    /// producer flushes, the worker commits what it stored), then the
    /// embedded cluster.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let result = self.services.await;
        drop(self.embedded);
        drop(self.postgres);
        result.context("the services panicked")?
    }
}

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {var}={addr} (is another eventpipe running?)"))
}

/// Starts the in-process cluster with the topics the services use, named
/// and sized as configured.
fn start_embedded_kafka(setting: impl Fn(&str) -> Option<String>) -> anyhow::Result<EmbeddedKafka> {
    let kafka = EmbeddedKafka::start(EMBEDDED_BROKERS)?;
    for (name_var, name, partitions_var, partitions) in EMBEDDED_TOPICS {
        let partitions = match setting(partitions_var) {
            Some(text) => text
                .parse()
                .with_context(|| format!("{partitions_var} must be a whole number"))?,
            None => partitions,
        };
        let name = setting(name_var).unwrap_or_else(|| name.to_owned());
        kafka.create_topic(&name, partitions)?;
    }
    if let Some(invalid) = setting("API_INVALID_TOPIC").filter(|t| !t.trim().is_empty()) {
        kafka.create_topic(&invalid, 1)?;
    }
    Ok(kafka)
}
