//! docs/CONFIGURATION.md is the user's reference for the environment: it
//! must have a row for every variable the API and the worker read, and the
//! row's default must be the one the code uses.

use std::path::PathBuf;

use eventpipe_service::settings::Var;

/// The reference's rows: variable name → its default cell.
fn rows() -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/CONFIGURATION.md");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `NAME` | default | what |
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_owned(), (*cells.get(2)?).to_owned()))
        })
        .collect()
}

fn check(vars: &[Var], rows: &[(String, String)], problems: &mut Vec<String>) {
    for var in vars {
        let Some((_, default)) = rows.iter().find(|(name, _)| name == var.name) else {
            problems.push(format!("{}: no row", var.name));
            continue;
        };
        match var.default {
            Some(value) if !default.contains(&format!("`{value}`")) => problems.push(format!(
                "{}: the code's default is `{value}`, the row says {default:?}",
                var.name
            )),
            None if default.starts_with('`') => problems.push(format!(
                "{}: the code has no default, the row says {default:?}",
                var.name
            )),
            _ => {}
        }
    }
}

#[test]
fn every_variable_has_a_row_with_the_code_s_default() {
    let rows = rows();
    assert!(rows.len() > 30, "the reference's table was not found");
    let mut problems = Vec::new();
    check(eventpipe_api::config::VARS, &rows, &mut problems);
    check(eventpipe_worker::config::VARS, &rows, &mut problems);
    check(eventpipe_service::telemetry::VARS, &rows, &mut problems);
    assert!(
        problems.is_empty(),
        "docs/CONFIGURATION.md disagrees with the code:\n{}",
        problems.join("\n")
    );
}

/// The check can fail: a wrong default and a missing row are both named.
#[test]
fn a_wrong_default_or_a_missing_row_is_named() {
    let vars = [
        eventpipe_service::settings::var("A_VAR", Some("3"), "x"),
        eventpipe_service::settings::var("B_VAR", None, "y"),
    ];
    let rows = vec![("A_VAR".to_owned(), "`4`".to_owned())];
    let mut problems = Vec::new();
    check(&vars, &rows, &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
}
