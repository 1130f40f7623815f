//! The operators' everyday commands, subcommands of `eventpipe`: `status`,
//! `db-stats`, `topics`, `dlq list` and `dlq redrive`. Each prints a
//! summary for people, or with `--json` one JSON document for scripts.
//!
//! They find the pipeline through the same variables the services read
//! (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CONFIG`, the topic and
//! group names) plus `EVENTPIPE_API_URL` and `EVENTPIPE_WORKER_URL`. A
//! variable left unset falls back to the local run (`eventpipe` with no
//! command), which records where its parts are while it runs, then to the
//! services' defaults. Every connection error names the variable to fix.

use anyhow::Context as _;

mod cli;
mod context;
pub mod db_stats;
pub mod dlq;
pub mod invalid;
mod kafka;
pub mod status;
pub mod topics;

pub use context::{Flags, LocalRun, Report, Target, VARS, print};

/// The commands' names, for the binary to tell them from its own flags.
pub const COMMANDS: &[&str] = &["status", "db-stats", "topics", "dlq", "invalid"];

/// `--help` for the commands.
pub fn help() -> String {
    let mut out = String::from(
        "Commands (each with --json for one JSON document; exit status 1 when something is down):\n\
         \x20 status                      the API and worker (health, readiness), PostgreSQL (reachable, migrated),\n\
         \x20                             each topic's partitions and offsets, the workers' committed offsets and lag with the age of\n\
         \x20                             the oldest message not committed, the events topic's retention, the DLQ size, the offsets\n\
         \x20                             the worker skipped; warns once lag is half as old as retention.ms\n\
         \x20 db-stats [--exact]          rows and size of each table and partition, the newest event, anomalies by rule\n\
         \x20                             in the last hour (rows are PostgreSQL's statistics unless --exact counts them)\n\
         \x20 topics [describe TOPIC]     the cluster's topics; one topic's partitions, leaders, replicas and offsets\n\
         \x20 dlq list [--reason R] [--limit N]\n\
         \x20                             the DLQ's messages with why they are there\n\
         \x20 dlq redrive [--reason R] [--offset P:O ...] [--dry-run] [--include-redriven]\n\
         \x20                             put DLQ messages back on the events topic once their cause is fixed; each\n\
         \x20                             message is redriven once (recorded in PostgreSQL); one that fails again\n\
         \x20                             returns to the DLQ and is left there unless --include-redriven\n\
         \x20 invalid list [--limit N]    the rejected events the API kept on API_INVALID_TOPIC (the last 20 unless --limit)\n\n",
    );
    out.push_str(&eventpipe_service::settings::help(VARS));
    out
}

/// Runs command `args[0]` with the rest of `args`; the exit status.
pub async fn run(args: &[String]) -> anyhow::Result<i32> {
    let matches = cli::parse(args)?;
    let target = Target::from_lookup(|name| std::env::var(name).ok(), LocalRun::running())?;
    let (command, sub, given) = cli::chosen(&matches)?;
    let flags = Flags::from(given);
    match (command, sub) {
        ("status", _) => print(&status::status(&target).await, flags.json),
        ("db-stats", _) => print(&db_stats::db_stats(&target, flags.exact).await?, flags.json),
        ("topics", None) => print(&topics::list(&target)?, flags.json),
        ("topics", Some(_)) => {
            let topic = given
                .get_one::<String>("topic")
                .context("topics describe takes a TOPIC")?;
            print(&topics::describe(&target, topic)?, flags.json)
        }
        ("dlq", Some("list")) => print(&dlq::list(&target, &flags).await?, flags.json),
        ("dlq", Some(_)) => print(&dlq::redrive(&target, &flags).await?, flags.json),
        (_, _) => print(&invalid::list(&target, &flags)?, flags.json),
    }
}
