//! The commands' command line, on clap: every flag declared once ([`arg`]),
//! each command listing the flags it takes, so clap refuses the others and
//! says which were meant. `--json` is every command's.

use anyhow::Context as _;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The flag `name` (with its dashes), as every command that takes it
/// declares it.
fn arg(name: &str) -> Arg {
    match name {
        "--json" => Arg::new("json")
            .long("json")
            .global(true)
            .action(ArgAction::SetTrue)
            .help("one JSON document instead of the summary"),
        "--exact" => Arg::new("exact")
            .long("exact")
            .action(ArgAction::SetTrue)
            .help("count every table's rows instead of PostgreSQL's statistics"),
        "--dry-run" => Arg::new("dry_run")
            .long("dry-run")
            .action(ArgAction::SetTrue)
            .help("say what would be redriven; send nothing"),
        "--include-redriven" => Arg::new("include_redriven")
            .long("include-redriven")
            .action(ArgAction::SetTrue)
            .help("also messages that came back after a redrive"),
        "--reason" => Arg::new("reason")
            .long("reason")
            .value_name("R")
            .help("only messages dead-lettered for this reason"),
        "--limit" => Arg::new("limit")
            .long("limit")
            .value_name("N")
            .value_parser(|text: &str| {
                text.parse::<usize>()
                    .map_err(|_| format!("--limit takes a whole number, not {text:?}"))
            })
            .help("at most this many messages"),
        "--offset" => Arg::new("offset")
            .long("offset")
            .value_name("PARTITION:OFFSET")
            .action(ArgAction::Append)
            .value_parser(offset)
            .help("this DLQ message (repeatable)"),
        other => unreachable!("{other} is not a flag of the commands"),
    }
}

/// `--offset`'s `PARTITION:OFFSET`.
fn offset(text: &str) -> Result<(i32, i64), String> {
    text.split_once(':')
        .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)))
        .ok_or_else(|| format!("--offset takes PARTITION:OFFSET, e.g. 0:42, not {text:?}"))
}

/// A command taking `flags`.
fn with(name: &'static str, flags: &[&str]) -> Command {
    Command::new(name).args(flags.iter().map(|f| arg(f)))
}

/// The commands and their flags.
pub fn command() -> Command {
    Command::new("eventpipe")
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .arg(arg("--json"))
        .subcommand(with("status", &[]))
        .subcommand(with("db-stats", &["--exact"]))
        .subcommand(
            with("topics", &[])
                .subcommand(with("describe", &[]).arg(Arg::new("topic").required(true))),
        )
        .subcommand(
            with("dlq", &[])
                .subcommand_required(true)
                .subcommand(with("list", &["--reason", "--limit"]))
                .subcommand(with(
                    "redrive",
                    &["--reason", "--offset", "--dry-run", "--include-redriven"],
                )),
        )
        .subcommand(
            with("invalid", &[])
                .subcommand_required(true)
                .subcommand(with("list", &["--limit"])),
        )
}

/// Parses `args` (the command and what follows it); the error says what
/// was wrong in the words the commands always used.
pub fn parse(args: &[String]) -> anyhow::Result<ArgMatches> {
    command()
        .try_get_matches_from(std::iter::once("eventpipe").chain(args.iter().map(String::as_str)))
        .map_err(explain)
}

/// A clap error as the commands say it: a flag given without its value
/// "needs a value"; anything else in clap's words.
fn explain(error: clap::Error) -> anyhow::Error {
    let value = |kind| match error.get(kind) {
        Some(ContextValue::String(text)) => Some(text.clone()),
        _ => None,
    };
    if error.kind() == ErrorKind::InvalidValue
        && value(ContextKind::InvalidValue).is_some_and(|v| v.is_empty())
        && let Some(flag) = value(ContextKind::InvalidArg)
    {
        let name = flag.split_whitespace().next().unwrap_or(&flag).to_owned();
        return anyhow::anyhow!("{name} needs a value");
    }
    let said = error.render().to_string();
    anyhow::anyhow!(
        "{}",
        said.strip_prefix("error: ").unwrap_or(&said).trim_end()
    )
}

/// Parses `args` as a command taking only `flags` (and `--json`).
#[cfg(test)]
pub fn parse_flags(args: &[String], flags: &[&str]) -> anyhow::Result<ArgMatches> {
    let others: Vec<&str> = flags.iter().copied().filter(|f| *f != "--json").collect();
    with("command", &others)
        .arg(arg("--json"))
        .try_get_matches_from(std::iter::once("command").chain(args.iter().map(String::as_str)))
        .map_err(explain)
}

/// The command chosen, its subcommand's name (`topics describe`, `dlq
/// list`), and the matches holding its flags.
pub fn chosen(matches: &ArgMatches) -> anyhow::Result<(&str, Option<&str>, &ArgMatches)> {
    let (name, command) = matches.subcommand().context("no command; see --help")?;
    Ok(match command.subcommand() {
        Some((sub, flags)) => (name, Some(sub), flags),
        None => (name, None, command),
    })
}
