//! The README is the user's reference: it must document every variable the
//! API and the worker read.

use std::path::PathBuf;

#[test]
fn readme_documents_every_environment_variable() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let missing: Vec<&str> = eventpipe_api::config::VARS
        .iter()
        .chain(eventpipe_worker::config::VARS)
        .map(|v| v.name)
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document {missing:?}"
    );
}
