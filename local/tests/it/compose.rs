//! Docker cannot run here, so docker-compose.yml is kept honest by reading
//! it: every service the stack needs is there; every file it builds from or
//! mounts exists; every variable it gives the api and worker is one they
//! read; every `depends_on` names a service, with a health check where it
//! waits for health; the ports agree with the services' addresses, the
//! Prometheus targets and the Grafana datasources; the topics it creates
//! are the contract's, with the embedded cluster's partition counts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

/// A service's environment as (name, value) pairs, merged anchors included.
fn environment(service: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Some(env) = service["environment"].as_object() {
        for (k, v) in env {
            if k == "<<" {
                pairs.extend(environment(&serde_json::json!({"environment": v})));
                continue;
            }
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            pairs.push((k.clone(), value));
        }
    }
    pairs
}

#[test]
fn the_stack_has_every_service_in_order() {
    let compose = compose();
    let services: BTreeSet<&str> = compose["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for needed in [
        "kafka",
        "kafka-init",
        "postgres",
        "migrate",
        "dashboards-role",
        "api",
        "worker",
        "prometheus",
        "grafana",
        "superset-init",
        "superset",
        "otel-collector",
        "jaeger",
        "emitter",
        "proxy",
        "kafka-ui",
    ] {
        assert!(services.contains(needed), "no service {needed}");
    }
    for (name, svc) in compose["services"].as_object().unwrap() {
        let Some(deps) = svc["depends_on"].as_object() else {
            continue;
        };
        for (dep, how) in deps {
            let target = service(&compose, dep);
            match how["condition"].as_str().unwrap() {
                "service_healthy" => {
                    let has_check = target["healthcheck"].is_object()
                        || target["build"]["target"].as_str().is_some();
                    assert!(
                        has_check,
                        "{name} waits for {dep} to be healthy; it has no health check"
                    );
                }
                "service_completed_successfully" => assert_eq!(
                    target["restart"], "no",
                    "{name} waits for {dep} to finish; it must be a one-shot"
                ),
                // Images without a shell to probe with (the collector, Jaeger).
                "service_started" => {}
                other => panic!("{name} -> {dep}: condition {other}"),
            }
        }
    }
    // The order that matters: schema before writers, topics before clients.
    let waits = |svc: &str, on: &str| service(&compose, svc)["depends_on"].get(on).is_some();
    assert!(waits("worker", "migrate") && waits("worker", "kafka-init"));
    assert!(waits("api", "kafka-init"));
    assert!(waits("migrate", "postgres") && waits("kafka-init", "kafka"));
    assert!(waits("dashboards-role", "migrate"));
    assert!(waits("grafana", "dashboards-role") && waits("superset-init", "dashboards-role"));
}

#[test]
fn every_built_and_mounted_file_exists() {
    let compose = compose();
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stages: BTreeSet<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .map(str::trim)
        .collect();
    for (name, svc) in compose["services"].as_object().unwrap() {
        if let Some(build) = svc.get("build") {
            let context = repo().join(build["context"].as_str().unwrap());
            let file = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(file.is_file(), "{name}: {} missing", file.display());
            if let Some(target) = build["target"].as_str() {
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(
                    text.contains(&format!(" AS {target}")),
                    "{name}: no stage {target} in {}",
                    file.display()
                );
            }
        }
        for volume in svc["volumes"].as_array().into_iter().flatten() {
            let spec = volume.as_str().unwrap();
            if let Some(source) = spec.strip_prefix("./") {
                let source = source.split(':').next().unwrap();
                assert!(
                    repo().join(source).exists(),
                    "{name}: mounts missing ./{source}"
                );
            } else {
                let named = spec.split(':').next().unwrap();
                assert!(
                    compose["volumes"].get(named).is_some(),
                    "{name}: volume {named} is not declared"
                );
            }
        }
    }
    assert!(
        stages.contains("api") && stages.contains("worker"),
        "{stages:?}"
    );
    // What the Superset image and init run must be in the mounted folder.
    for file in [
        "deploy/superset/init.sh",
        "deploy/superset/bundle.py",
        "deploy/superset/superset_config.py",
        "deploy/superset/bundle/metadata.yaml",
    ] {
        assert!(repo().join(file).is_file(), "{file} missing");
    }
    let init = std::fs::read_to_string(repo().join("deploy/superset/init.sh")).unwrap();
    assert!(init.contains("/app/eventpipe/bundle.py"));
    let superset = service(&compose, "superset-init");
    assert!(
        environment(superset)
            .iter()
            .any(|(k, v)| k == "SUPERSET_CONFIG_PATH" && v == "/app/eventpipe/superset_config.py")
    );
}

#[test]
fn services_get_only_variables_they_read() {
    let compose = compose();
    let read = |vars: &[eventpipe_service::settings::Var]| -> BTreeSet<&'static str> {
        vars.iter().map(|v| v.name).collect()
    };
    let tracing_vars = read(eventpipe_service::telemetry::VARS);
    let api_vars: BTreeSet<_> = read(eventpipe_api::config::VARS)
        .union(&tracing_vars)
        .copied()
        .collect();
    let worker_vars: BTreeSet<_> = read(eventpipe_worker::config::VARS)
        .union(&tracing_vars)
        .copied()
        .collect();
    // The worker's container also runs the operations commands
    // (`docker compose exec worker eventpipe status`).
    let worker_container: BTreeSet<_> = worker_vars
        .union(&read(eventpipe_local::ops::VARS))
        .copied()
        .collect();
    // RUST_LOG is read by the tracing set-up both share.
    for (name, known) in [
        ("api", &api_vars),
        ("worker", &worker_container),
        ("migrate", &worker_vars),
    ] {
        for (var, _) in environment(service(&compose, name)) {
            assert!(
                known.contains(var.as_str()) || var == "RUST_LOG",
                "{name} is given {var}, which it does not read"
            );
        }
    }
}

#[test]
fn ports_targets_and_datasources_agree() {
    let compose = compose();
    let env_of = |svc: &str, var: &str| {
        environment(service(&compose, svc))
            .into_iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{svc} has no {var}"))
    };
    let published = |svc: &str| -> Vec<String> {
        service(&compose, svc)["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().rsplit(':').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(env_of("api", "API_ADDR"), "0.0.0.0:8080");
    assert_eq!(env_of("worker", "WORKER_ADDR"), "0.0.0.0:8081");
    // The api and the worker scale, so they publish no host port: the
    // proxy does, and spreads requests over every replica it resolves.
    for (svc, port) in [("api", "8080"), ("worker", "8081")] {
        let s = service(&compose, svc);
        assert!(
            s.get("ports").is_none(),
            "{svc} publishes a host port: it cannot scale"
        );
        assert!(s["expose"].as_array().unwrap().iter().any(|p| p == port));
        assert!(
            published("proxy").contains(&port.to_owned()),
            "proxy does not publish {port}"
        );
    }
    let nginx = std::fs::read_to_string(repo().join("deploy/proxy/nginx.conf")).unwrap();
    assert!(
        nginx.contains("resolver 127.0.0.11"),
        "the proxy must resolve per request"
    );
    for (var, svc, port) in [("$api", "api", "8080"), ("$worker", "worker", "8081")] {
        assert!(nginx.contains(&format!("listen {port};")));
        assert!(nginx.contains(&format!("set {var} {svc};")));
        assert!(nginx.contains(&format!("proxy_pass http://{var}:{port};")));
    }
    assert!(
        service(&compose, "proxy")["volumes"][0]
            .as_str()
            .unwrap()
            .starts_with("./deploy/proxy/nginx.conf:/etc/nginx/nginx.conf")
    );
    assert!(published("prometheus").contains(&"9090".to_owned()));
    assert!(published("grafana").contains(&"3000".to_owned()));
    assert!(published("superset").contains(&"8088".to_owned()));
    assert_eq!(env_of("api", "KAFKA_BOOTSTRAP_SERVERS"), "kafka:9092");
    let kafka_listeners = env_of("kafka", "KAFKA_ADVERTISED_LISTENERS");
    assert!(
        kafka_listeners.contains("PLAINTEXT://kafka:9092"),
        "{kafka_listeners}"
    );
    assert_eq!(env_of("kafka", "KAFKA_PROCESS_ROLES"), "broker,controller");

    // Prometheus finds every replica of the services by DNS.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let discovered: BTreeSet<String> = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|job| job["dns_sd_configs"].as_array())
        .flatten()
        .flat_map(|sd| {
            let port = sd["port"].as_i64().unwrap();
            assert_eq!(sd["type"], "A");
            sd["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |n| format!("{}:{port}", n.as_str().unwrap()))
        })
        .collect();
    assert!(
        discovered.contains("api:8080") && discovered.contains("worker:8081"),
        "{discovered:?}"
    );

    // Kafka UI reads the stack's Kafka on its in-network listener.
    let ui = environment(service(&compose, "kafka-ui"));
    assert!(
        ui.iter()
            .any(|(k, v)| k == "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS" && v == "kafka:9092")
    );
    assert!(published("kafka-ui").contains(&"8080".to_owned()));

    // Grafana's datasources point at compose services, with the variables
    // compose gives Grafana.
    let datasources = yaml("deploy/grafana/provisioning/datasources/eventpipe.yml");
    let grafana_env: BTreeSet<String> = environment(service(&compose, "grafana"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let text: String = std::fs::read_to_string(
        repo().join("deploy/grafana/provisioning/datasources/eventpipe.yml"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.trim_start().starts_with('#'))
    .collect::<Vec<_>>()
    .join("\n");
    for (at, _) in text.match_indices("${") {
        let var = &text[at + 2..at + 2 + text[at + 2..].find('}').unwrap()];
        assert!(grafana_env.contains(var), "Grafana is not given {var}");
    }
    let urls: Vec<&str> = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["url"].as_str())
        .collect();
    assert!(
        urls.contains(&"http://prometheus:9090") && urls.contains(&"postgres:5432"),
        "{urls:?}"
    );
    let mounted = service(&compose, "grafana")["volumes"]
        .as_array()
        .unwrap()
        .clone();
    let provider = yaml("deploy/grafana/provisioning/dashboards/eventpipe.yml");
    let dashboards_path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        mounted
            .iter()
            .any(|v| v.as_str().unwrap()
                == format!("./deploy/grafana/dashboards:{dashboards_path}:ro")),
        "the dashboards provider reads {dashboards_path}, which compose does not mount"
    );
    assert!(
        environment(service(&compose, "grafana")).iter().any(
            |(k, v)| k == "GF_INSTALL_PLUGINS" && v.contains("yesoreyeram-infinity-datasource")
        )
    );
}

#[test]
fn topics_are_created_with_the_contract_names_and_partitions() {
    let compose = compose();
    let init = service(&compose, "kafka-init")["command"][0]
        .as_str()
        .unwrap()
        .to_owned();
    use eventpipe_service::settings::kafka;
    for (topic, partitions) in [
        (kafka::EVENTS_TOPIC, kafka::EVENTS_PARTITIONS),
        (kafka::DLQ_TOPIC, kafka::DLQ_PARTITIONS),
        (kafka::ANOMALIES_TOPIC, kafka::ANOMALIES_PARTITIONS),
    ] {
        let (topic, partitions) = (topic.default.unwrap(), partitions.default.unwrap());
        assert!(
            init.contains(&format!(" {topic}:{partitions}"))
                || init.contains(&format!("in {topic}:{partitions}")),
            "kafka-init does not create {topic} with {partitions} partitions:\n{init}"
        );
    }
    // The API must not race kafka-init to create topics with other settings.
    let api = environment(service(&compose, "api"));
    assert!(
        api.iter()
            .any(|(k, v)| k == "KAFKA_CREATE_TOPICS" && v == "false")
    );
}

/// Traces go from both services to the collector's OTLP/HTTP port, through
/// a pipeline made of components the file defines, to Jaeger's OTLP port;
/// Grafana reads Jaeger where compose runs it.
#[test]
fn traces_flow_from_the_services_through_the_collector_to_jaeger() {
    let compose = compose();
    let collector = yaml("deploy/otel/collector.yaml");
    let http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .unwrap();
    let port = http.rsplit(':').next().unwrap();
    for svc in ["api", "worker"] {
        let env = environment(service(&compose, svc));
        let endpoint = env
            .iter()
            .find(|(k, _)| k == "OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{svc} exports no traces"));
        assert_eq!(endpoint, format!("http://otel-collector:{port}"), "{svc}");
        // The value must be one the services accept.
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.replace("${OTEL_TRACES_SAMPLER_ARG:-0.1}", "0.1"))
        };
        let export = eventpipe_service::telemetry::export_settings(lookup, svc).unwrap();
        assert!(export.is_some(), "{svc}: tracing is off");
        assert!(
            service(&compose, svc)["depends_on"]
                .get("otel-collector")
                .is_some()
        );
    }
    let pipeline = &collector["service"]["pipelines"]["traces"];
    for (kind, list) in [
        ("receivers", "receivers"),
        ("processors", "processors"),
        ("exporters", "exporters"),
    ] {
        for name in pipeline[list].as_array().unwrap() {
            let name = name.as_str().unwrap();
            assert!(
                collector[kind].get(name).is_some(),
                "the traces pipeline uses {kind} {name}, which the file does not define"
            );
        }
    }
    for extension in collector["service"]["extensions"].as_array().unwrap() {
        assert!(
            collector["extensions"]
                .get(extension.as_str().unwrap())
                .is_some()
        );
    }
    let exporter = pipeline["exporters"][0].as_str().unwrap();
    assert_eq!(
        collector["exporters"][exporter]["endpoint"], "jaeger:4317",
        "the collector forwards to Jaeger's OTLP/gRPC port"
    );
    let mounted = service(&compose, "otel-collector")["volumes"][0]
        .as_str()
        .unwrap();
    let config = service(&compose, "otel-collector")["command"][0]
        .as_str()
        .unwrap();
    assert_eq!(
        mounted,
        format!(
            "./deploy/otel/collector.yaml:{}:ro",
            config.strip_prefix("--config=").unwrap()
        )
    );
    let jaeger_ports = service(&compose, "jaeger")["ports"].as_array().unwrap();
    assert!(jaeger_ports.iter().any(|p| p == "16686:16686"));
    let datasources = yaml("deploy/grafana/provisioning/datasources/eventpipe.yml");
    let jaeger = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "jaeger")
        .expect("a Jaeger datasource");
    assert_eq!(jaeger["url"], "http://jaeger:16686");
}

/// The Makefile has the targets users expect and `make help` lists each.
/// The ones that run here are run for real elsewhere (`ops.rs`: status,
/// db-stats, topics, dlq and run against a local pipeline; the load
/// crate's `make.rs`: load). Those that need Docker (there is no engine
/// here) or are the test command and the benchmark themselves are checked
/// to call docker compose on the stack checked above, or a script of the
/// repository; with STACK=compose the operations commands run in the
/// worker container, whose image ships them.
#[test]
fn the_makefile_lists_its_targets_and_each_calls_a_real_command() {
    let make = |args: &[&str]| {
        let output = std::process::Command::new("make")
            .args(args)
            .current_dir(repo())
            .output()
            .expect("make runs");
        assert!(output.status.success(), "make {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let help = make(&["help"]);
    for target in [
        "up", "down", "clean", "logs", "status", "db-stats", "topics", "dlq", "test", "bench",
        "load", "run",
    ] {
        assert!(
            help.contains(&format!("make {target} ")),
            "make help does not list {target}:\n{help}"
        );
    }
    for (target, expected) in [
        ("up", "docker compose up -d --build"),
        ("down", "docker compose down"),
        ("clean", "docker compose down -v"),
        ("logs", "docker compose logs -f"),
        ("status", "docker compose exec worker eventpipe status"),
        ("db-stats", "docker compose exec worker eventpipe db-stats"),
        ("topics", "docker compose exec worker eventpipe topics"),
        ("dlq", "docker compose exec worker eventpipe dlq list"),
        ("test", "scripts/test"),
        ("bench", "scripts/bench"),
    ] {
        let commands = make(&["-n", target, "STACK=compose"]);
        assert!(commands.contains(expected), "{target}: {commands}");
        if let Some(script) = expected.strip_prefix("scripts/") {
            assert!(repo().join("scripts").join(script).is_file(), "{target}");
        }
    }
    let load = make(&["-n", "load", "STACK=compose"]);
    assert!(
        load.contains("--audit-database-url postgres://eventpipe:"),
        "{load}"
    );
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for image in ["api", "worker"] {
        let stage = dockerfile
            .split(&format!("AS {image}\n"))
            .nth(1)
            .and_then(|rest| rest.split("\nFROM ").next())
            .unwrap_or_else(|| panic!("no {image} stage"));
        assert!(
            stage.contains("/usr/local/bin/eventpipe /usr/local/bin/eventpipe"),
            "the {image} image does not ship the operations commands"
        );
    }
}

/// The emitter runs the load generator's image with the emitter scenario
/// the image holds, forever, against the API where compose runs it, and
/// EMITTER_RATE=0 turns it off without a restart loop.
#[test]
fn the_emitter_sends_sample_traffic_to_the_api() {
    let compose = compose();
    let emitter = service(&compose, "emitter");
    assert_eq!(emitter["build"]["target"], "load");
    let script = emitter["command"][0].as_str().unwrap();
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY load/scenarios /usr/local/share/eventpipe/scenarios"));
    assert!(dockerfile.contains("target/release/eventpipe-load"));
    assert!(script.contains("--scenario /usr/local/share/eventpipe/scenarios/emitter.toml"));
    assert!(repo().join("load/scenarios/emitter.toml").is_file());
    assert!(script.contains("--forever"));
    let api_port = environment(service(&compose, "api"))
        .into_iter()
        .find(|(k, _)| k == "API_ADDR")
        .map(|(_, v)| v.rsplit(':').next().unwrap().to_owned())
        .unwrap();
    assert!(
        script.contains(&format!("--url http://api:{api_port}")),
        "{script}"
    );
    assert!(script.contains("\"$${EMITTER_RATE}\" = 0") && script.contains("exit 0"));
    assert_eq!(emitter["restart"], "on-failure");
    assert!(emitter["depends_on"]["api"].is_object());
    // 1,000 events per second by default, its controls published and
    // scraped (the flags are the ones load/tests/it/control.rs drives).
    assert!(
        environment(emitter)
            .iter()
            .any(|(k, v)| k == "EMITTER_RATE" && v == "${EMITTER_RATE:-1000}")
    );
    assert!(
        script.contains("--events-rate \"$${EMITTER_RATE}\""),
        "{script}"
    );
    assert!(script.contains("--control 0.0.0.0:9464"), "{script}");
    assert_eq!(emitter["ports"][0], "9464:9464");
    let prometheus =
        std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(prometheus.contains("targets: [\"emitter:9464\"]"));
}
