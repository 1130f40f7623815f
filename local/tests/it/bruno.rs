//! The Bruno collection (collections/bruno, run by `scripts/bruno/run`
//! with Bruno's CLI) stays complete: every operation of both OpenAPI
//! documents has a request, every request asserts the status, and both
//! environments name the same variables.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (service, METHOD, path with `{param}`s) of every request in `folder`,
/// with the file's text.
fn requests(folder: &str) -> Vec<(String, String, String)> {
    let dir = repo().join("collections/bruno").join(folder);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".bru") || name == "folder.bru" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (method, url) = ["get", "post", "put", "delete", "patch"]
            .iter()
            .find_map(|m| {
                let block = text.split(&format!("\n{m} {{\n")).nth(1)?;
                let url = block.lines().find_map(|l| l.trim().strip_prefix("url: "))?;
                Some((m.to_uppercase(), url.to_owned()))
            })
            .unwrap_or_else(|| panic!("{name}: no request block"));
        assert!(
            text.contains("  res.status: eq ") || text.contains("res.getStatus()"),
            "{folder}/{name} does not assert the status"
        );
        // {{apiUrl}}/api/v1/users/{{userId}}/anomalies?x=1 → /api/v1/users/{user_id}/anomalies
        let path = url.split_once("}}").unwrap().1.split('?').next().unwrap();
        let path = path
            .replace("{{eventId}}", "{event_id}")
            .replace("nobody-{{userId}}", "{user_id}")
            .replace("{{userId}}", "{user_id}")
            .replace("00000000-0000-7000-8000-000000000000", "{event_id}")
            .replace("not-a-uuid", "{event_id}");
        found.push((method, path, text));
    }
    found
}

fn operations(document: &str) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo().join(document)).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_operation_of_both_services_has_a_request_asserting_its_status() {
    for (folder, document) in [
        ("api", "openapi/api.json"),
        ("worker", "openapi/worker.json"),
    ] {
        let requests = requests(folder);
        let covered: BTreeSet<(String, String)> = requests
            .iter()
            .map(|(m, p, _)| (m.clone(), p.clone()))
            .collect();
        let missing: Vec<_> = operations(document).difference(&covered).cloned().collect();
        assert!(missing.is_empty(), "{folder}: no request for {missing:?}");
        // The documents and the UI are endpoints too.
        for path in ["/openapi.json", "/docs/"] {
            assert!(
                covered.contains(&("GET".to_owned(), path.to_owned())),
                "{folder}: {path}"
            );
        }
        // The main errors are there, not only the happy path.
        let statuses: BTreeSet<&str> = requests
            .iter()
            .filter_map(|(_, _, text)| text.split("  res.status: eq ").nth(1))
            .map(|rest| rest.lines().next().unwrap())
            .collect();
        let errors: &[&str] = if folder == "api" {
            &["400", "413", "415", "422"]
        } else {
            &["400", "401", "404"]
        };
        for status in errors {
            assert!(
                statuses.contains(status),
                "{folder}: nothing asserts a {status}"
            );
        }
    }
}

#[test]
fn both_environments_set_the_same_variables() {
    let vars = |name: &str| -> BTreeSet<String> {
        std::fs::read_to_string(repo().join("collections/bruno/environments").join(name))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().split_once(": ").map(|(k, _)| k.to_owned()))
            .collect()
    };
    let local = vars("local.bru");
    assert_eq!(local, vars("compose.bru"));
    for needed in ["apiUrl", "workerUrl", "token"] {
        assert!(local.contains(needed), "{needed}");
    }
    let script = std::fs::read_to_string(repo().join("scripts/bruno/run")).unwrap();
    assert!(script.contains("WORKER_ANALYTICS_TOKEN=change-me"));
    let test = std::fs::read_to_string(repo().join("scripts/test")).unwrap();
    assert!(
        test.contains("scripts/bruno/run"),
        "the test command runs the collection"
    );
}
