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
