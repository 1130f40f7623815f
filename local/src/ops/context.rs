//! What every command shares: where the pipeline's parts are ([`Target`],
//! from the variables or the local run's record, [`LocalRun`]), the
//! command line ([`Flags`]) and printing ([`Report`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use eventpipe_service::settings::kafka::{self, properties};
use eventpipe_service::settings::{ConfigError, Env, Secret, Var, database, print_out, var};
use serde::{Deserialize, Serialize};

/// The variables the commands read.
pub const VARS: &[Var] = &[
    var(
        "EVENTPIPE_API_URL",
        Some("http://127.0.0.1:8080"),
        "the API's base URL (default: the local run's, if one is running)",
    ),
    var(
        "EVENTPIPE_WORKER_URL",
        Some("http://127.0.0.1:8081"),
        "the worker's base URL (default: the local run's, if one is running)",
    ),
    database::DATABASE_URL,
    kafka::BOOTSTRAP_SERVERS,
    kafka::CONFIG,
    kafka::EVENTS_TOPIC,
    kafka::DLQ_TOPIC,
    kafka::ANOMALIES_TOPIC,
    var(
        "API_INVALID_TOPIC",
        None,
        "the topic the API keeps rejected events on, for `invalid list`",
    ),
    kafka::GROUP_ID,
    kafka::CONNECT_TIMEOUT_MS,
];

/// Where the pipeline's parts are.
#[derive(Debug, Clone)]
pub struct Target {
    /// The API's base URL.
    pub api: String,
    /// The worker's base URL.
    pub worker: String,
    /// PostgreSQL.
    pub database_url: String,
    /// Kafka, when known.
    pub bootstrap: Option<String>,
    /// `KAFKA_CONFIG`.
    pub kafka_extra: Vec<(String, Secret<String>)>,
    /// `KAFKA_EVENTS_TOPIC`.
    pub events_topic: String,
    /// `KAFKA_DLQ_TOPIC`.
    pub dlq_topic: String,
    /// `KAFKA_ANOMALIES_TOPIC`.
    pub anomalies_topic: String,
    /// `API_INVALID_TOPIC`.
    pub invalid_topic: Option<String>,
    /// `KAFKA_GROUP_ID`.
    pub group_id: String,
    /// `KAFKA_CONNECT_TIMEOUT_MS`.
    pub timeout: Duration,
    /// Whether Kafka is the local run's embedded cluster.
    pub embedded: bool,
}

impl Target {
    /// Reads [`VARS`] through `lookup`, falling back to `local` (the local
    /// run's record) for what is unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        local: Option<LocalRun>,
    ) -> Result<Self, ConfigError> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let env = Env::new(VARS, &lookup);
        let or_local = |name: &'static str, local: Option<String>| -> Result<String, ConfigError> {
            match (set(name), local) {
                (None, Some(value)) => Ok(value),
                _ => env.required(name),
            }
        };
        let local = local.as_ref();
        Ok(Target {
            api: or_local("EVENTPIPE_API_URL", local.map(|l| l.api.clone()))?,
            worker: or_local("EVENTPIPE_WORKER_URL", local.map(|l| l.worker.clone()))?,
            database_url: or_local("DATABASE_URL", local.map(|l| l.database_url.clone()))?,
            bootstrap: set("KAFKA_BOOTSTRAP_SERVERS")
                .or_else(|| local.map(|l| l.bootstrap.clone())),
            embedded: local.is_some_and(|l| {
                l.embedded && set("KAFKA_BOOTSTRAP_SERVERS").is_none_or(|b| b == l.bootstrap)
            }),
            kafka_extra: properties(&env)?,
            events_topic: env.required(kafka::EVENTS_TOPIC.name)?,
            dlq_topic: env.required(kafka::DLQ_TOPIC.name)?,
            anomalies_topic: env.required(kafka::ANOMALIES_TOPIC.name)?,
            invalid_topic: env.optional("API_INVALID_TOPIC")?,
            group_id: env.required(kafka::GROUP_ID.name)?,
            timeout: kafka::connect_timeout(&env)?,
        })
    }

    /// The database URL without its password, for messages.
    pub fn database(&self) -> String {
        eventpipe_service::settings::redact_url(&self.database_url)
    }

    /// Kafka's address, or an error saying how to give it.
    pub fn bootstrap(&self) -> anyhow::Result<&str> {
        self.bootstrap.as_deref().context(
            "no Kafka to ask: set KAFKA_BOOTSTRAP_SERVERS (or start the local run, `eventpipe`, whose embedded cluster is used when it is unset)",
        )
    }
}

/// Where a running local pipeline's parts are, recorded while it runs so
/// the commands find it without variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalRun {
    /// The local run's process id.
    pub pid: u32,
    /// The API's base URL.
    pub api: String,
    /// The worker's base URL.
    pub worker: String,
    /// The database it uses.
    pub database_url: String,
    /// Its Kafka.
    pub bootstrap: String,
    /// Whether that Kafka is the embedded cluster.
    #[serde(default)]
    pub embedded: bool,
}

impl LocalRun {
    /// Where the record is kept.
    pub fn path() -> PathBuf {
        std::env::temp_dir().join("eventpipe-local-run.json")
    }

    /// Records this run (readable by its user only: the database URL may
    /// hold a password).
    pub fn record(&self) -> anyhow::Result<()> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(serde_json::to_string(self)?.as_bytes())?;
        Ok(())
    }

    /// Removes the record if it is this process's.
    pub fn forget() {
        if Self::running().is_some_and(|run| run.pid == std::process::id()) {
            let _ = std::fs::remove_file(Self::path());
        }
    }

    /// The record of a local run still running, if any.
    pub fn running() -> Option<LocalRun> {
        let text = std::fs::read_to_string(Self::path()).ok()?;
        let run: LocalRun = serde_json::from_str(&text).ok()?;
        let alive = PathBuf::from(format!("/proc/{}", run.pid)).exists();
        alive.then_some(run)
    }
}

/// The command line of one command, once parsed.
#[derive(Debug, Default)]
pub struct Flags {
    /// `--json`.
    pub json: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--exact`.
    pub exact: bool,
    /// `--include-redriven`.
    pub include_redriven: bool,
    /// `--reason R`.
    pub reason: Option<String>,
    /// `--limit N`.
    pub limit: Option<usize>,
    /// `--offset P:O`, repeatable.
    pub offsets: Vec<(i32, i64)>,
}

impl From<&clap::ArgMatches> for Flags {
    /// The flags of the command `matches` holds (clap checked them).
    fn from(matches: &clap::ArgMatches) -> Self {
        let taken = |id: &str| matches.try_get_one::<bool>(id).ok().flatten().copied();
        Flags {
            json: taken("json").unwrap_or(false),
            dry_run: taken("dry_run").unwrap_or(false),
            exact: taken("exact").unwrap_or(false),
            include_redriven: taken("include_redriven").unwrap_or(false),
            reason: matches
                .try_get_one::<String>("reason")
                .ok()
                .flatten()
                .cloned(),
            limit: matches
                .try_get_one::<usize>("limit")
                .ok()
                .flatten()
                .copied(),
            offsets: matches
                .try_get_many::<(i32, i64)>("offset")
                .ok()
                .flatten()
                .map(|o| o.copied().collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
impl Flags {
    /// Parses `args` as a command taking only the flags `allowed` (clap
    /// refuses the others, naming them): the flags' own checks, apart
    /// from any command.
    pub fn parse(args: &[String], allowed: &[&str]) -> anyhow::Result<Self> {
        let matches = super::cli::parse_flags(args, allowed)?;
        Ok(Flags::from(&matches))
    }
}

/// What a command found, printable both ways.
pub trait Report: Serialize {
    /// The summary for people.
    fn human(&self) -> String;
    /// False when something is down or wrong (the exit status is then 1).
    fn ok(&self) -> bool {
        true
    }
}

/// Prints `report` as asked; the exit status it calls for.
pub fn print(report: &impl Report, json: bool) -> anyhow::Result<i32> {
    if json {
        print_out(&(serde_json::to_string_pretty(report)? + "\n"))?;
    } else {
        print_out(&report.human())?;
    }
    Ok(if report.ok() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_are_parsed_and_a_bad_one_is_named() {
        let flags = Flags::parse(
            &words(&[
                "--reason",
                "not_json",
                "--offset=0:42",
                "--offset",
                "1:7",
                "--dry-run",
            ]),
            &["--reason", "--offset", "--dry-run"],
        )
        .unwrap();
        assert_eq!(flags.reason.as_deref(), Some("not_json"));
        assert_eq!(flags.offsets, vec![(0, 42), (1, 7)]);
        assert!(flags.dry_run);
        let error = Flags::parse(&words(&["--offset", "seven"]), &["--offset"]).unwrap_err();
        assert!(error.to_string().contains("PARTITION:OFFSET"), "{error}");
        let error = Flags::parse(&words(&["--force"]), &["--json"]).unwrap_err();
        assert!(error.to_string().contains("--force"), "{error}");
        let error = Flags::parse(&words(&["--limit"]), &["--limit"]).unwrap_err();
        assert!(error.to_string().contains("needs a value"), "{error}");
    }

    #[test]
    fn a_variable_wins_over_the_local_run_which_wins_over_the_default() {
        let local = LocalRun {
            pid: 1,
            api: "http://127.0.0.1:40001".to_owned(),
            worker: "http://127.0.0.1:40002".to_owned(),
            database_url: "postgres://postgres@127.0.0.1:5432/local".to_owned(),
            bootstrap: "127.0.0.1:40003".to_owned(),
            embedded: true,
        };
        let vars = |name: &str| (name == "EVENTPIPE_API_URL").then(|| "http://api:8080".to_owned());
        let target = Target::from_lookup(vars, Some(local)).unwrap();
        assert_eq!(target.api, "http://api:8080");
        assert_eq!(target.worker, "http://127.0.0.1:40002");
        assert_eq!(target.bootstrap.as_deref(), Some("127.0.0.1:40003"));
        let target = Target::from_lookup(|_| None, None).unwrap();
        assert_eq!(target.worker, "http://127.0.0.1:8081");
        assert!(
            target
                .bootstrap()
                .unwrap_err()
                .to_string()
                .contains("KAFKA_BOOTSTRAP_SERVERS")
        );
    }
}
