//! The Superset bundle's charts show the most recent data: every time
//! filter of every chart (the form data Superset edits and the query
//! context it runs) is a range that ends at now. Superset's `Last day` and
//! `Last week` end at the start of today, so a chart using them is blank
//! for everything that arrived today. `scripts/superset-check` then proves
//! the numbers against a real Superset.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn charts() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/superset/bundle/charts");
    let mut charts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let chart =
                yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, chart)
        })
        .collect();
    charts.sort_by(|a, b| a.0.cmp(&b.0));
    charts
}

/// Every `TEMPORAL_RANGE` value anywhere in a chart, however nested.
fn temporal_ranges(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map
                .get("operator")
                .or_else(|| map.get("op"))
                .and_then(Value::as_str)
                == Some("TEMPORAL_RANGE")
            {
                let range = map.get("comparator").or_else(|| map.get("val"));
                found.push(range.and_then(Value::as_str).unwrap_or("(none)").to_owned());
            }
            if let Some(range) = map.get("time_range").and_then(Value::as_str) {
                found.push(range.to_owned());
            }
            map.values().for_each(|v| temporal_ranges(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| temporal_ranges(v, found)),
        _ => {}
    }
}

#[test]
fn every_chart_range_ends_at_now() {
    let charts = charts();
    assert!(charts.len() >= 5, "the bundle's charts are missing");
    for (path, chart) in charts {
        let name = path.file_name().unwrap().to_string_lossy();
        let query_context: Value =
            serde_json::from_str(chart["query_context"].as_str().unwrap()).unwrap();
        let mut ranges = Vec::new();
        temporal_ranges(&chart["params"], &mut ranges);
        temporal_ranges(&query_context, &mut ranges);
        // params, the query's filter and the query context's form data
        assert!(
            ranges.len() >= 3,
            "{name}: time filters missing: {ranges:?}"
        );
        for range in ranges {
            let end = range.rsplit(" : ").next().unwrap().trim();
            assert!(
                range.contains(" : ") && end == "now",
                "{name}: time range {range:?} must end at now, e.g. \
                 'DATEADD(DATETIME(\"now\"), -1, day) : now'"
            );
        }
    }
}
