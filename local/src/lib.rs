//! The whole pipeline in one process: an embedded Kafka (librdkafka's mock
//! cluster, topics created) unless a real one is configured, the PostgreSQL
//! database created and migrated when needed, the ingestion API and the
//! worker. The `eventpipe` binary runs it until Ctrl-C; the load generator's
//! tests start one per test with their own database and ports.

pub mod ops;
pub mod postgres;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eventpipe_api::config::ApiConfig;
use eventpipe_embedded_kafka::{EmbeddedKafka, KEEPS_BYTES_PER_PARTITION};
use eventpipe_store as db;
use eventpipe_worker::config::{WorkerConfig, redact_url};
use rdkafka::consumer::BaseConsumer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The API's `linger.ms` against the embedded cluster, unless
/// `KAFKA_LINGER_MS` says otherwise (docs/BENCHMARKS.md: with the broker
/// in-process, 0 halved what the whole pipeline stored).
pub const EMBEDDED_LINGER_MS: &str = "5";

/// The API's `compression.type` against the embedded cluster, unless
/// `KAFKA_COMPRESSION` says otherwise.
pub const EMBEDDED_COMPRESSION: &str = "none";

/// Brokers in the embedded cluster: enough for `acks=all` to mean something.
const EMBEDDED_BROKERS: i32 = 3;

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
    /// The workers' group and topic, to see what they have yet to store.
    group_id: String,
    events_topic: String,
    api_task: Service,
    worker_task: Service,
}

/// A service running in its task, and what stops it.
struct Service {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    fn spawn(run: impl FnOnce(watch::Receiver<bool>) -> JoinHandle<anyhow::Result<()>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        Service {
            stop,
            task: run(stopped),
        }
    }

    async fn stop(self, name: &str) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task
            .await
            .with_context(|| format!("the {name} panicked"))?
            .with_context(|| format!("the {name} failed"))
    }
}

/// How long [`Pipeline::start`] waits for both services to serve.
const SERVICES_START_WITHIN: Duration = Duration::from_secs(120);

/// How long [`Pipeline::stop`] waits for the workers to store what the API
/// accepted, with the embedded Kafka.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(60);

/// What stopping left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Accepted events the workers had not stored when the embedded Kafka
    /// stopped (lost with it); 0 with an external Kafka, which keeps them.
    pub abandoned: i64,
}

impl Pipeline {
    /// Starts everything, reading settings through `setting` (the process
    /// environment in the binary). Returns once both services listen.
    pub async fn start(setting: impl Fn(&str) -> Option<String> + Clone) -> anyhow::Result<Self> {
        let external = setting("KAFKA_BOOTSTRAP_SERVERS").filter(|s| !s.trim().is_empty());
        let embedded = match external {
            Some(_) => None,
            None => Some(EmbeddedKafka::start(EMBEDDED_BROKERS)?),
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
            // The embedded broker deletes what passes its per-partition
            // keep, read or not: the API refuses events before the
            // workers' backlog can reach it.
            "API_MAX_BACKLOG_BYTES" if is_embedded => {
                setting(name).or_else(|| Some(KEEPS_BYTES_PER_PARTITION.to_string()))
            }
            // The embedded broker shares the cores with the worker: a
            // produce request per event (linger 0, the API's default for a
            // broker of its own) would starve the worker. Batch instead.
            "KAFKA_LINGER_MS" if is_embedded => {
                setting(name).or_else(|| Some(EMBEDDED_LINGER_MS.to_owned()))
            }
            // Compressing for a broker in the same process only costs
            // cores; and the backlog bound charges uncompressed events less
            // (no allowance for what compression can add).
            "KAFKA_COMPRESSION" if is_embedded => {
                setting(name).or_else(|| Some(EMBEDDED_COMPRESSION.to_owned()))
            }
            _ => setting(name),
        };
        let api_config = ApiConfig::from_lookup(lookup)?;
        let worker_config = WorkerConfig::from_lookup(lookup)?;
        if let Some(kafka) = &embedded {
            create_topics(kafka, &api_config, &worker_config)?;
        }
        if is_embedded && let Some(max) = api_config.backlog.max_bytes {
            anyhow::ensure!(
                max <= KEEPS_BYTES_PER_PARTITION,
                "API_MAX_BACKLOG_BYTES: {max} is more than the embedded Kafka keeps per partition ({KEEPS_BYTES_PER_PARTITION}); events the workers had not read would be deleted"
            );
        }

        let database_url = worker_config.database_url.clone();
        db::create_database_if_missing(database_url.expose())
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL is not reachable at {}: start it (e.g. `pg_ctlcluster 15 main start`) or set DATABASE_URL",
                    redact_url(database_url.expose())
                )
            })?;
        db::migrate(database_url.expose()).await?;

        let api_listener = bind(api_config.addr, "API_ADDR").await?;
        let worker_listener = bind(worker_config.addr, "WORKER_ADDR").await?;
        let api = api_listener.local_addr()?;
        let worker = worker_listener.local_addr()?;

        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let group_id = worker_config.group_id.clone();
        let events_topic = worker_config.events_topic.clone();
        let api_task = Service::spawn(|stop| {
            tokio::spawn(eventpipe_api::serve(
                api_config,
                api_listener,
                stopped(stop),
            ))
        });
        let worker_task = Service::spawn(|stop| {
            tokio::spawn(eventpipe_worker::serve(
                worker_config,
                worker_listener,
                stopped(stop),
            ))
        });
        let pipeline = Self {
            api,
            worker,
            database_url: database_url.expose().to_owned(),
            bootstrap,
            embedded,
            postgres: private,
            group_id,
            events_topic,
            api_task,
            worker_task,
        };
        let mut pipeline = pipeline;
        pipeline.started().await?;
        Ok(pipeline)
    }

    /// Waits until both services serve HTTP; the error of one that
    /// stopped at start-up instead (Kafka or PostgreSQL unreachable, a
    /// topic that cannot be had), so the run never claims to be up while a
    /// part of it is not.
    async fn started(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + SERVICES_START_WITHIN;
        for (name, addr, service) in [
            ("API", self.api, &mut self.api_task),
            ("worker", self.worker, &mut self.worker_task),
        ] {
            loop {
                if service.task.is_finished() {
                    let ended = (&mut service.task).await;
                    return Err(match ended {
                        Ok(Err(error)) => error.context(format!("the {name} stopped at start-up")),
                        Ok(Ok(())) => anyhow::anyhow!("the {name} stopped at start-up"),
                        Err(panic) => anyhow::anyhow!("the {name} panicked at start-up: {panic}"),
                    });
                }
                let health = http.get(format!("http://{addr}/health")).send().await;
                if health.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the {name} did not start within {} s",
                    SERVICES_START_WITHIN.as_secs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The private PostgreSQL this run started, if it did.
    pub fn private_postgres(&self) -> Option<&postgres::PrivatePostgres> {
        self.postgres.as_ref()
    }

    /// Whether Kafka is the in-process mock cluster.
    pub fn kafka_is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stops both services gracefully (see [`Pipeline::stop_draining`]),
    /// waiting up to [`DRAIN_WITHIN`] for the workers.
    pub async fn stop(self) -> anyhow::Result<Stopped> {
        self.stop_draining(DRAIN_WITHIN, std::future::pending(), |_| {})
            .await
    }

    /// Stops the API first (in-flight requests finish, the producer
    /// flushes; nothing more is answered 202). With the embedded Kafka,
    /// which keeps nothing once the process ends, then waits until the
    /// workers have committed every accepted event, up to `within` or until
    /// `abandon` resolves (a second Ctrl-C), calling `waiting` with the
    /// events still to store about once a second. Then stops the worker
    /// (it commits what it stored) and the embedded cluster.
    pub async fn stop_draining(
        self,
        within: Duration,
        abandon: impl Future<Output = ()>,
        mut waiting: impl FnMut(i64),
    ) -> anyhow::Result<Stopped> {
        let progress = match self.embedded {
            Some(_) => Some(self.progress()?),
            None => None,
        };
        let api = self.api_task.stop("API").await;
        let mut abandoned = 0;
        if let Some(progress) = progress
            && !self.worker_task.task.is_finished()
        {
            let deadline = Instant::now().checked_add(within);
            let drained = async {
                let mut said = Instant::now();
                loop {
                    abandoned = uncommitted(&progress, &self.events_topic)
                        .await
                        .unwrap_or(abandoned.max(1));
                    if abandoned == 0
                        || deadline.is_some_and(|d| Instant::now() >= d)
                        || self.worker_task.task.is_finished()
                    {
                        return;
                    }
                    if said.elapsed() >= Duration::from_secs(1) {
                        waiting(abandoned);
                        said = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                () = drained => {}
                () = abandon => {}
            }
        }
        let worker = self.worker_task.stop("worker").await;
        drop(self.embedded);
        drop(self.postgres);
        api?;
        worker?;
        Ok(Stopped { abandoned })
    }

    /// A client reading the workers' progress on the events topic.
    fn progress(&self) -> anyhow::Result<Arc<BaseConsumer>> {
        let client =
            eventpipe_service::kafka::client_config(&self.bootstrap, "eventpipe-local", &[])
                .set("group.id", &self.group_id)
                .set("enable.auto.commit", "false")
                .create()
                .context("creating a Kafka client")?;
        Ok(Arc::new(client))
    }
}

/// Messages of `topic` that `client`'s group has not committed.
async fn uncommitted(client: &Arc<BaseConsumer>, topic: &str) -> anyhow::Result<i64> {
    let client = client.clone();
    let topic = topic.to_owned();
    let lags = tokio::task::spawn_blocking(move || {
        eventpipe_service::kafka::group_lag(&client, &topic, Duration::from_secs(2))
    })
    .await??;
    Ok(lags.iter().map(|l| l.lag).sum())
}

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {var}={addr} (is another eventpipe running?)"))
}

/// Makes the topics the services use in the embedded cluster, named and
/// sized as configured (the services do not create them there).
fn create_topics(
    kafka: &EmbeddedKafka,
    api: &ApiConfig,
    worker: &WorkerConfig,
) -> anyhow::Result<()> {
    let topics = &worker.topics;
    for (name, partitions) in [
        (&worker.events_topic, topics.events_partitions),
        (&worker.dlq_topic, topics.dlq_partitions),
        (&worker.anomalies_topic, topics.anomalies_partitions),
    ] {
        kafka.create_topic(name, partitions)?;
    }
    if let Some(invalid) = &api.kafka.invalid {
        kafka.create_topic(&invalid.topic, 1)?;
    }
    Ok(())
}
