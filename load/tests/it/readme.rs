//! load/README.md is the user's reference for the load generator: every flag,
//! every environment variable and every metric must be in it.

use std::path::PathBuf;

use clap::CommandFactory;
use eventpipe_load::config::Options;
use eventpipe_load::metrics::CATALOG;

#[test]
fn readme_documents_every_flag_variable_and_metric() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let command = Options::command();
    let mut missing = Vec::new();
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long()
            && !readme.contains(&format!("`--{long}"))
            && !["help", "version"].contains(&long)
        {
            missing.push(format!("--{long}"));
        }
        if let Some(var) = arg.get_env()
            && !readme.contains(&format!("`{}`", var.to_string_lossy()))
        {
            missing.push(var.to_string_lossy().into_owned());
        }
    }
    for metric in CATALOG {
        if !readme.contains(&format!("`{}`", metric.name)) {
            missing.push(metric.name.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "load/README.md does not document {missing:?}"
    );
}

/// Each default the README's table states is the one the code fills in
/// and `--help` shows (`config::defaults`).
#[test]
fn readme_states_the_code_s_defaults() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let command = Options::command();
    let mut wrong = Vec::new();
    for (id, shown) in eventpipe_load::config::defaults::shown() {
        let long = command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_long())
            .unwrap_or_else(|| panic!("no flag {id}"));
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `--{long}")))
            .unwrap_or_else(|| panic!("no row for --{long}"));
        // The value, without the note after it.
        let value = shown
            .split("; ")
            .next()
            .unwrap()
            .split(", or ")
            .next()
            .unwrap();
        let default = row.rsplit('|').nth(1).unwrap_or_default();
        if !default.contains(value) {
            wrong.push(format!(
                "--{long}: README says {default:?}, the code {value:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
