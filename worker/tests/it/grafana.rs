//! Grafana cannot run here, so its provisioning is checked piece by piece:
//! every file under deploy/grafana parses; every panel names a provisioned
//! datasource; every Infinity query, with Grafana's variables filled in the
//! way Grafana fills them, is accepted by the real worker and its answer
//! has the columns the panel reads; every SQL panel runs as the read-only
//! dashboards role; every metric a Prometheus query (or alert) names is one
//! the services export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::*;
use diesel::sql_query;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use eventpipe_store::{DEFAULT_DEDUP_WINDOW, store_batch};
use serde_json::Value;

const INFINITY: &str = "yesoreyeram-infinity-datasource";
/// Where the dashboards expect the worker (the compose service).
const WORKER_BASE: &str = "http://worker:8081";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Every file under deploy/grafana, parsed.
fn grafana_files() -> Vec<(PathBuf, Value)> {
    files_under(&repo().join("deploy/grafana"))
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                Some("yml" | "yaml") => yaml_serde::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                _ => panic!("{}: not JSON or YAML", path.display()),
            };
            (path, parsed)
        })
        .collect()
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    grafana_files()
        .into_iter()
        .filter(|(_, v)| v.get("panels").is_some())
        .collect()
}

/// (dashboard file, panel title, target) for every query of every panel.
fn targets() -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, dashboard) in dashboards() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap().to_owned();
            for target in panel["targets"].as_array().unwrap() {
                all.push((file.clone(), title.clone(), target.clone()));
            }
        }
    }
    all
}

/// Every latency panel links to a Jaeger search (through the provisioned
/// datasource) for spans the code makes: a span name the service's code
/// passes to `span!`, or the `METHOD /route` of a request span for a route
/// the service's OpenAPI document has.
#[test]
fn latency_panels_link_to_traces_the_services_make() {
    let (_, dashboard) = dashboards()
        .into_iter()
        .find(|(p, _)| p.ends_with("pipeline-operations.json"))
        .unwrap();
    let source = |dir: &str| -> String {
        let mut files = Vec::new();
        for d in [dir, "service/src"] {
            files.extend(files_under(&repo().join(d)));
        }
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    };
    let mut linked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or("");
        let links = panel["links"].as_array().cloned().unwrap_or_default();
        if !title.to_lowercase().contains("latency") {
            continue;
        }
        assert_eq!(links.len(), 1, "{title}: no link to traces");
        let url = links[0]["url"].as_str().unwrap();
        let query = url.strip_prefix("/explore?").unwrap();
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        let panes = &params.iter().find(|(k, _)| k == "panes").unwrap().1;
        let panes: Value = serde_json::from_str(panes).unwrap_or_else(|e| panic!("{title}: {e}"));
        assert_eq!(panes["a"]["range"]["from"], "${__from}", "{title}");
        let pane = &panes["a"];
        assert_eq!(pane["datasource"], "eventpipe-jaeger", "{title}");
        let query = &pane["queries"][0];
        let operation = query["operation"].as_str().unwrap();
        let (dir, openapi) = match query["service"].as_str().unwrap() {
            "eventpipe-api" => ("api/src", "openapi/api.json"),
            "eventpipe-worker" => ("worker/src", "openapi/worker.json"),
            other => panic!("{title}: service {other} is neither binary's default name"),
        };
        let made = match operation.split_once(' ') {
            Some((method, route)) if method.chars().all(|c| c.is_ascii_uppercase()) => {
                let doc: Value =
                    serde_json::from_str(&std::fs::read_to_string(repo().join(openapi)).unwrap())
                        .unwrap();
                doc["paths"][route].get(method.to_lowercase()).is_some()
            }
            _ => source(dir).contains(&format!("\"{operation}\",")),
        };
        assert!(made, "{title}: no {operation:?} span is made in {dir}");
        linked += 1;
    }
    assert!(linked >= 5, "{linked} latency panels");
}

#[test]
fn every_file_parses_and_every_panel_names_a_provisioned_datasource() {
    let files = grafana_files();
    assert!(files.len() >= 4, "datasources, provider and two dashboards");
    let provisioned: BTreeSet<String> = files
        .iter()
        .filter_map(|(_, v)| v.get("datasources"))
        .flat_map(|d| d.as_array().unwrap().clone())
        .map(|d| d["uid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(provisioned.len(), 4, "{provisioned:?}");
    let mut uids = BTreeSet::new();
    for (path, dashboard) in dashboards() {
        assert!(uids.insert(dashboard["uid"].as_str().unwrap().to_owned()));
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "{}: duplicate id",
                path.display()
            );
            let uid = panel["datasource"]["uid"].as_str().unwrap();
            assert!(provisioned.contains(uid), "{}: {uid}", path.display());
            for target in panel["targets"].as_array().unwrap() {
                let uid = target["datasource"]["uid"].as_str().unwrap();
                assert!(provisioned.contains(uid), "{}: {uid}", path.display());
            }
        }
    }
    assert_eq!(uids.len(), 2);
}

/// A Grafana template filled as Grafana would for `[from, to)`.
fn fill(template: &str, from: i64, to: i64, interval_ms: i64, types: &str) -> String {
    template
        .replace("${__from}", &from.to_string())
        .replace("${__to}", &to.to_string())
        .replace("$__interval_ms", &interval_ms.to_string())
        .replace("${type}", types)
}

/// The value at a dotted selector ("" is the whole document).
fn select<'a>(value: &'a Value, selector: &str) -> Option<&'a Value> {
    if selector.is_empty() {
        return Some(value);
    }
    selector.split('.').try_fold(value, |v, key| v.get(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_infinity_query_is_accepted_by_the_worker_and_has_its_columns() {
    let db = TestDb::create().await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    store_batch(&pool, &known_events(), DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    db.connect()
        .await
        .batch_execute(&insert_known_anomalies())
        .await
        .unwrap();
    let kafka = kafka();
    let worker = start_worker(&kafka, &db, &[("WORKER_ANALYTICS_TOKEN", "dash")]).await;
    wait_ready(&worker).await;
    let http = reqwest::Client::new();
    let from = at("2026-11-20T09:00:00Z").timestamp_millis();
    let to = at("2026-11-20T12:00:00Z").timestamp_millis();

    let mut checked = 0;
    for (file, title, target) in targets() {
        if target["datasource"]["type"] != INFINITY {
            continue;
        }
        let url = target["url"].as_str().unwrap();
        let path = url
            .strip_prefix(WORKER_BASE)
            .unwrap_or_else(|| panic!("{file} / {title}: {url} is not on {WORKER_BASE}"));
        assert_eq!(target["url_options"]["method"], "GET");
        // Grafana's interval hint ranges from a second to a day; the type
        // box is empty ("all") or a list.
        for (interval_ms, types) in [(1000, ""), (60_000, "login,purchase"), (86_400_000, "")] {
            let query: Vec<(String, String)> = target["url_options"]["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["key"].as_str().unwrap().to_owned(),
                        fill(p["value"].as_str().unwrap(), from, to, interval_ms, types),
                    )
                })
                .collect();
            let response = http
                .get(worker.url(path))
                .query(&query)
                .bearer_auth("dash")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{file} / {title}: {query:?}: {body}");
            let root = select(&body, target["root_selector"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{file} / {title}: no root in {body}"));
            let rows = match root {
                Value::Array(rows) => rows.clone(),
                one => vec![one.clone()],
            };
            assert!(!rows.is_empty(), "{file} / {title}: no rows for {query:?}");
            for column in target["columns"].as_array().unwrap() {
                let selector = column["selector"].as_str().unwrap();
                for row in &rows {
                    let value = select(row, selector)
                        .unwrap_or_else(|| panic!("{file} / {title}: {selector} missing in {row}"));
                    match column["type"].as_str().unwrap() {
                        "number" => assert!(value.is_number(), "{title}: {selector}={value}"),
                        "string" => assert!(value.is_string(), "{title}: {selector}={value}"),
                        "timestamp" => assert!(
                            chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).is_ok(),
                            "{title}: {selector}={value}"
                        ),
                        other => panic!("{title}: column type {other}"),
                    }
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} Infinity queries found");
    worker.stop().await.unwrap();
}

/// Grafana's PostgreSQL macros, expanded as Grafana expands them.
fn expand_sql(sql: &str, from: &str, to: &str) -> String {
    let mut out = sql.to_owned();
    while let Some(start) = out.find("$__timeGroupAlias(") {
        let end = start + out[start..].find(')').unwrap();
        let args: Vec<&str> = out[start + "$__timeGroupAlias(".len()..end]
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(args[1], "'1m'", "only 1m groups are expanded here");
        let expanded = format!("floor(extract(epoch from {})/60)*60 AS \"time\"", args[0]);
        out.replace_range(start..=end, &expanded);
    }
    while let Some(start) = out.find("$__timeFilter(") {
        let end = start + out[start..].find(')').unwrap();
        let column = out[start + "$__timeFilter(".len()..end].trim().to_owned();
        let expanded = format!("{column} BETWEEN '{from}' AND '{to}'");
        out.replace_range(start..=end, &expanded);
    }
    assert!(!out.contains("$__"), "unexpanded macro in {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_panel_runs_as_the_dashboards_role() {
    let db = TestDb::create().await;
    let pool = eventpipe_store::pool(&db.url, 1).await.unwrap();
    store_batch(&pool, &known_events(), DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    db.apply_dashboards_role().await;
    let mut reader = db.dashboards_reader().await;
    let mut checked = 0;
    for (file, title, target) in targets() {
        let Some(sql) = target["rawSql"].as_str() else {
            continue;
        };
        let sql = expand_sql(sql, "2026-11-20T09:00:00Z", "2026-11-20T12:00:00Z");
        let counted = format!("SELECT count(*)::int8 AS n FROM ({sql}) AS panel");
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows: Vec<N> = sql_query(&counted)
            .load(&mut reader)
            .await
            .unwrap_or_else(|e| panic!("{file} / {title}: {e}\n{sql}"));
        assert!(rows[0].n > 0, "{file} / {title}: no rows\n{sql}");
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} SQL panels found");
}

/// Names of the form eventpipe_* in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("eventpipe_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// Each dashboard opens on a range that ends at now, and no panel shifts
/// or narrows it to whole days: a range ending at the start of today (or
/// yesterday) would hide the newest data, which is what these dashboards
/// are for.
#[test]
fn every_dashboard_range_ends_at_now() {
    for (path, dashboard) in dashboards() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            dashboard["time"]["to"], "now",
            "{file}: the default range must end at now"
        );
        let from = dashboard["time"]["from"].as_str().unwrap();
        assert!(
            from.starts_with("now-") && !from.contains('/'),
            "{file}: the default range must start a span before now, got {from:?}"
        );
        for panel in dashboard["panels"].as_array().unwrap() {
            for key in ["timeShift", "timeFrom"] {
                assert!(
                    panel.get(key).is_none_or(Value::is_null),
                    "{file}: panel {} overrides the range with {key}",
                    panel["title"]
                );
            }
        }
    }
}

#[test]
fn every_metric_a_dashboard_or_alert_names_is_exported() {
    // The metric name constants, the one place each service spells them.
    let exported: BTreeSet<String> = ["api/src/metrics.rs", "worker/src/metrics.rs"]
        .iter()
        .flat_map(|f| {
            let source = std::fs::read_to_string(repo().join(f)).unwrap();
            metric_names(&source)
        })
        .collect();
    let mut queried = BTreeSet::new();
    for (_, _, target) in targets() {
        if let Some(expr) = target["expr"].as_str() {
            queried.extend(metric_names(expr));
        }
    }
    let alerts = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    queried.extend(metric_names(&alerts));
    assert!(queried.len() >= 12, "{queried:?}");
    for name in &queried {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| exported.contains(*base))
            .unwrap_or(name);
        assert!(
            exported.contains(family),
            "{name} is not a metric eventpipe exports"
        );
    }
}
