//! The Kubernetes manifests (deploy/kubernetes), validated offline: every
//! object of Kubernetes' own kinds against the Kubernetes schemas
//! (scripts/kubernetes/validate: kustomize, then kubernetes-validate
//! --strict), and here what the schemas cannot say: each container is given
//! only variables its service reads, the probes are the services' health
//! endpoints, the worker scales on its own group and topic up to the
//! partition count, and Prometheus scrapes both services.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The objects `kubectl kustomize deploy/kubernetes/<dir>` renders.
fn render(dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .args(["kustomize", &format!("deploy/kubernetes/{dir}")])
        .current_dir(repo())
        .output()
        .expect("kubectl (scripts/setup installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.split("\n---\n")
        .map(|doc| yaml_serde::from_str(doc).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn names(vars: &[eventpipe_service::settings::Var]) -> BTreeSet<&'static str> {
    vars.iter()
        .chain(eventpipe_service::telemetry::VARS)
        .map(|v| v.name)
        .collect()
}

/// The variables a container is given: its `env` and its ConfigMaps' keys.
fn given(container: &Value, objects: &[Value]) -> Vec<String> {
    let mut vars: Vec<String> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().unwrap();
        let map = find(objects, "ConfigMap", name);
        vars.extend(map["data"].as_object().unwrap().keys().cloned());
    }
    vars
}

/// The containers of a Deployment, a Job or a Knative Service (all keep
/// their pod spec at `spec.template.spec`).
fn containers(object: &Value) -> Vec<&Value> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let status = Command::new("scripts/kubernetes/validate")
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/kubernetes/validate failed");
}

#[test]
fn containers_get_only_variables_they_read_and_probe_their_health() {
    let api = names(eventpipe_api::config::VARS);
    let worker = names(eventpipe_worker::config::VARS);
    for dir in ["base", "knative"] {
        let objects = render(dir);
        let api_object = objects
            .iter()
            .find(|o| {
                o["metadata"]["name"] == "eventpipe-api"
                    && (o["kind"] == "Deployment" || o["apiVersion"] == "serving.knative.dev/v1")
            })
            .unwrap_or_else(|| panic!("{dir}: no API"));
        for (object, known) in [
            (api_object, &api),
            (find(&objects, "Deployment", "eventpipe-worker"), &worker),
            (find(&objects, "Job", "eventpipe-migrate"), &worker),
        ] {
            for container in containers(object) {
                for var in given(container, &objects) {
                    assert!(
                        known.contains(var.as_str()),
                        "{dir}: {} is given {var}, which it does not read",
                        object["metadata"]["name"]
                    );
                }
                if object["kind"] != "Job" {
                    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
                    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
                }
            }
        }
        // Every secret a container reads is in the Secret.
        let secret = find(&objects, "Secret", "eventpipe");
        for object in &objects {
            let text = object.to_string();
            for key in text.split("\"key\":\"").skip(1) {
                let key = key.split('"').next().unwrap();
                assert!(
                    secret["stringData"].get(key).is_some(),
                    "{dir}: the Secret has no {key}"
                );
            }
        }
    }
}

#[test]
fn the_worker_scales_on_its_lag_up_to_the_partitions_and_both_are_scraped() {
    let objects = render("base");
    let api_config = &find(&objects, "ConfigMap", "eventpipe-api")["data"];
    let worker_config = &find(&objects, "ConfigMap", "eventpipe-worker")["data"];
    for key in ["KAFKA_BOOTSTRAP_SERVERS", "KAFKA_EVENTS_TOPIC"] {
        assert_eq!(api_config[key], worker_config[key], "{key}");
    }
    let scaled = find(&objects, "ScaledObject", "eventpipe-worker");
    assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], "eventpipe-worker");
    let partitions: u64 = api_config["KAFKA_EVENTS_PARTITIONS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        scaled["spec"]["maxReplicaCount"], partitions,
        "more workers than partitions sit idle"
    );
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "kafka");
    let kafka = &trigger["metadata"];
    assert_eq!(kafka["consumerGroup"], worker_config["KAFKA_GROUP_ID"]);
    assert_eq!(kafka["topic"], worker_config["KAFKA_EVENTS_TOPIC"]);
    assert_eq!(
        kafka["bootstrapServers"],
        worker_config["KAFKA_BOOTSTRAP_SERVERS"]
    );
    let hpa = find(&objects, "HorizontalPodAutoscaler", "eventpipe-api");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "eventpipe-api");
    // The ServiceMonitor selects both Services, on their named port.
    let monitor = find(&objects, "ServiceMonitor", "eventpipe");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for name in ["eventpipe-api", "eventpipe-worker"] {
        let service = find(&objects, "Service", name);
        for (label, value) in selector {
            assert_eq!(&service["metadata"]["labels"][label], value, "{name}");
        }
        assert_eq!(
            service["spec"]["ports"][0]["name"],
            monitor["spec"]["endpoints"][0]["port"]
        );
    }
    // Migrations run as a Job of the worker's image.
    let job = find(&objects, "Job", "eventpipe-migrate");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "migrate"
    );
}
