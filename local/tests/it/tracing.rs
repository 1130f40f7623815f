//! Traces, end to end: the `eventpipe` binary runs as a user would run it
//! (its own process, configured by the standard `OTEL_*` variables) and
//! exports to an OTLP/HTTP receiver inside the test, which decodes the
//! protobuf requests with `opentelemetry-proto`. One event is followed from
//! the client's `traceparent` through the API's spans, the Kafka headers and
//! the worker's batch (by its link) to the stored row and the anomaly it
//! raised; a rejected request's trace says why; a poison message's
//! dead-lettering is traced and logged with the trace's ids; with no
//! endpoint set nothing is sent at all.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use eventpipe_embedded_kafka::EmbeddedKafka;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// A client's trace: its id and the id of the client span that sent the request.
const CLIENT_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const CLIENT_SPAN: &str = "eee19b7ec3c1b174";
const REJECTED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const POISON_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PROFILE_TRACE: &str = "7d1a2c9e5f3b48a6b0c4e8f2a6d9c3b1";

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
    status: i32,
    status_message: String,
    /// (trace id, span id, attributes) of each link.
    links: Vec<(String, String, HashMap<String, String>)>,
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// An OTLP/HTTP trace receiver: what it was sent, and how many requests.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<usize>>,
}

async fn export(State(receiver): State<Receiver>, body: Bytes) -> StatusCode {
    *receiver.requests.lock().unwrap() += 1;
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = receiver.spans.lock().unwrap();
    for resource in request.resource_spans {
        let resource_attributes =
            attributes(&resource.resource.map(|r| r.attributes).unwrap_or_default());
        let service = resource_attributes
            .get("service.name")
            .cloned()
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for s in scope.spans {
                let status = s.status.unwrap_or_default();
                let mut attrs = attributes(&s.attributes);
                for (k, v) in &resource_attributes {
                    attrs.insert(format!("resource.{k}"), v.clone());
                }
                spans.push(Span {
                    service: service.clone(),
                    name: s.name,
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    attributes: attrs,
                    status: status.code,
                    status_message: status.message,
                    links: s
                        .links
                        .iter()
                        .map(|l| {
                            (
                                hex::encode(&l.trace_id),
                                hex::encode(&l.span_id),
                                attributes(&l.attributes),
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    StatusCode::OK
}

impl Receiver {
    /// Listens on `addr` (port 0: any), answering `POST /v1/traces`.
    async fn start(addr: &str) -> (Self, String) {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until a span matching `found` has arrived.
    async fn wait_for(&self, what: &str, found: impl Fn(&Span) -> bool) -> Span {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| found(s)) {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} span arrived; got: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `eventpipe` binary on its own database and ports, against `kafka`,
/// its log lines collected.
struct Pipeline {
    child: Child,
    api: String,
    worker: String,
    database: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Pipeline {
    async fn start(kafka: &EmbeddedKafka, name: &str, otel: &[(&str, &str)]) -> Self {
        let database = format!("eventpipe_tracing_{name}_{}", std::process::id());
        drop_database(&database);
        let (api, worker) = (
            format!("127.0.0.1:{}", crate::free_port()),
            format!("127.0.0.1:{}", crate::free_port()),
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_eventpipe"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{database}"),
            )
            .env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers())
            .env("API_ADDR", &api)
            .env("WORKER_ADDR", &worker)
            .env("WORKER_BATCH_WAIT_MS", "50")
            .env("KAFKA_LINGER_MS", "1")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in otel {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let pipeline = Pipeline {
            child,
            api: format!("http://{api}"),
            worker: format!("http://{worker}"),
            database,
            logs,
        };
        for base in [&pipeline.api, &pipeline.worker] {
            pipeline.wait_ready(base).await;
        }
        pipeline
    }

    async fn wait_ready(&self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::get(format!("{base}/ready"))
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{base} never became ready; logs:\n{}",
                self.logs.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// POSTs `body` with the client's `traceparent`.
    async fn post(&self, body: serde_json::Value, traceparent: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/events", self.api))
            .header("content-type", "application/json")
            .header("traceparent", traceparent)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Waits until the worker's read API has the event.
    async fn wait_stored(&self, event_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = reqwest::get(format!("{}/api/v1/events/{event_id}", self.worker))
                .await
                .unwrap();
            if response.status() == 200 {
                return response.json().await.unwrap();
            }
            assert!(Instant::now() < deadline, "event {event_id} never stored");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop_database(&self.database);
    }
}

fn drop_database(name: &str) {
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// An embedded cluster with the pipeline's three topics.
fn kafka() -> EmbeddedKafka {
    let kafka = EmbeddedKafka::start(1).unwrap();
    kafka.create_topic("events", 3).unwrap();
    kafka.create_topic("events.dlq", 1).unwrap();
    kafka.create_topic("anomalies", 1).unwrap();
    kafka
}

/// The headers of every message `topic` holds (waiting until there is one).
fn headers_on(kafka: &EmbeddedKafka, topic: &str) -> Vec<HashMap<String, String>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", format!("tracing-test-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                let value = h.value.map(String::from_utf8_lossy);
                                (h.key.to_owned(), value.unwrap_or_default().into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                found.push(headers);
            }
            _ if !found.is_empty() => break,
            _ => {}
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_followed_from_the_client_through_kafka_to_its_row() {
    let (receiver, endpoint) = Receiver::start("127.0.0.1:0").await;
    let kafka = kafka();
    let pipeline = Pipeline::start(
        &kafka,
        "on",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            // Only the client's sampled flag gets anything traced.
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;

    // A purchase above 1000 raises an anomaly.
    let event_id = "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f71";
    let response = pipeline
        .post(
            serde_json::json!({"event_id": event_id, "user_id": "user-traced", "type": "purchase",
                               "payload": {"amount": 5000.0, "currency": "USD"}}),
            &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
        )
        .await;
    assert_eq!(response.status(), 202);
    let receipt: serde_json::Value = response.json().await.unwrap();
    let partition = receipt["results"][0]["partition"].to_string();
    let offset = receipt["results"][0]["offset"].to_string();
    let row = pipeline.wait_stored(event_id).await;
    assert_eq!(row["event_id"], event_id);

    // The API: the request continues the client's span; its steps are its children.
    let in_client_trace =
        |name: &'static str| move |s: &Span| s.trace_id == CLIENT_TRACE && s.name == name;
    let request = receiver
        .wait_for("request", in_client_trace("POST /events"))
        .await;
    assert_eq!(request.parent, CLIENT_SPAN);
    assert_eq!(request.service, "eventpipe");
    assert_eq!(
        request.attributes["resource.deployment.environment"],
        "test"
    );
    assert_eq!(request.attributes["http.response.status_code"], "202");
    assert_eq!(request.attributes["http.route"], "/events");
    for step in ["decode", "validate", "rate_limit"] {
        let span = receiver.wait_for(step, in_client_trace(step)).await;
        assert_eq!(span.parent, request.span_id, "{step}");
    }
    let produce = receiver
        .wait_for("produce", in_client_trace("produce"))
        .await;
    assert_eq!(produce.parent, request.span_id);
    assert_eq!(produce.attributes["eventpipe.event_id"], event_id);
    assert_eq!(produce.attributes["messaging.kafka.offset"], offset);

    // The worker: the event's span is in the client's trace, under the
    // produce span whose context the message carried...
    let stored = receiver
        .wait_for("store event", in_client_trace("store event"))
        .await;
    assert_eq!(stored.parent, produce.span_id);
    assert_eq!(stored.attributes["eventpipe.event_id"], event_id);
    assert_eq!(
        stored.attributes["messaging.destination.partition.id"],
        partition
    );
    assert_eq!(stored.attributes["messaging.kafka.offset"], offset);
    // ...and linked to its batch, a trace of its own linked back to the event.
    let (batch_trace, batch_span, _) = stored.links[0].clone();
    let batch = receiver
        .wait_for("batch", |s| s.name == "batch" && s.span_id == batch_span)
        .await;
    assert_eq!(batch.trace_id, batch_trace);
    assert_ne!(batch.trace_id, CLIENT_TRACE);
    let link = batch
        .links
        .iter()
        .find(|(trace, span, _)| trace == CLIENT_TRACE && *span == produce.span_id)
        .expect("the batch links to the event's context");
    assert_eq!(link.2["eventpipe.event_id"], event_id);
    assert_eq!(link.2["messaging.kafka.offset"], offset);
    for child in ["transaction", "evaluate rules", "publish anomalies"] {
        let span = receiver
            .wait_for(child, |s| s.name == child && s.trace_id == batch.trace_id)
            .await;
        let parent = if child == "evaluate rules" {
            receiver
                .wait_for("transaction", |s| {
                    s.name == "transaction" && s.trace_id == batch.trace_id
                })
                .await
                .span_id
        } else {
            batch.span_id.clone()
        };
        assert_eq!(span.parent, parent, "{child}");
    }

    // The anomaly it raised carries the event's context.
    let anomalies = headers_on(&kafka, "anomalies");
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    assert_eq!(
        anomalies[0]["traceparent"],
        format!("00-{CLIENT_TRACE}-{}-01", produce.span_id)
    );

    // A rejected request: its trace says why.
    let response = pipeline
        .post(
            serde_json::json!({"user_id": "user-traced", "type": "purchase",
                               "payload": {"amount": -5, "currency": "USD"}}),
            &format!("00-{REJECTED_TRACE}-{CLIENT_SPAN}-01"),
        )
        .await;
    assert_eq!(response.status(), 422);
    let rejected = receiver
        .wait_for("rejected request", |s| {
            s.trace_id == REJECTED_TRACE && s.name == "POST /events"
        })
        .await;
    assert_eq!(rejected.attributes["http.response.status_code"], "422");
    assert_eq!(
        rejected.attributes["eventpipe.rejection.reason"],
        "invalid-events"
    );
    assert!(
        rejected.attributes["eventpipe.rejection.detail"].contains("/payload/amount"),
        "{rejected:?}"
    );
    let validate = receiver
        .wait_for("failed validate", |s| {
            s.trace_id == REJECTED_TRACE && s.name == "validate"
        })
        .await;
    assert_eq!(validate.status, SpanStatus::Error as i32);
    assert!(validate.status_message.contains("/payload/amount"));
    assert!(
        !receiver
            .spans()
            .iter()
            .any(|s| s.trace_id == REJECTED_TRACE && s.name == "produce"),
        "a rejected request produces nothing"
    );

    // A poison message on the topic: dead-lettered in a traced span linked
    // to the context it came with, and the warning is logged with the ids.
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    let traceparent = format!("00-{POISON_TRACE}-{CLIENT_SPAN}-01");
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: "traceparent",
        value: Some(traceparent.as_str()),
    });
    producer
        .send(
            BaseRecord::to("events")
                .key("poison")
                .payload("not json")
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let dead = receiver
        .wait_for("dead_letter", |s| {
            s.name == "dead_letter" && s.links.iter().any(|(t, _, _)| t == POISON_TRACE)
        })
        .await;
    assert_eq!(dead.attributes["eventpipe.dlq.reason"], "not_json");
    assert!(dead.attributes.contains_key("messaging.kafka.offset"));
    assert_eq!(dead.status, SpanStatus::Error as i32);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let line = pipeline.logs().into_iter().find(|l| {
            l.contains("message sent to the dead-letter topic") && l.contains(&dead.trace_id)
        });
        if let Some(line) = line {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON log line with the batch's trace id {}:\n{}",
            dead.trace_id,
            pipeline.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let line: serde_json::Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(line["trace_id"], dead.trace_id);
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16));

    // A user's id is in their rows, never in a log line or an exported span,
    // whatever the run did with their events: stored, an anomaly raised, a
    // request refused, their profile read (traced, by the client's flag).
    let user = "user-traced";
    let profile = reqwest::Client::new()
        .get(format!("{}/api/v1/users/{user}", pipeline.worker))
        .header(
            "traceparent",
            format!("00-{PROFILE_TRACE}-{CLIENT_SPAN}-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 200);
    receiver
        .wait_for("the profile's request", |s| s.trace_id == PROFILE_TRACE)
        .await;
    let logged: Vec<String> = pipeline
        .logs()
        .into_iter()
        .filter(|l| l.contains(user))
        .collect();
    assert!(
        logged.is_empty(),
        "log lines naming the user:\n{}",
        logged.join("\n")
    );
    let names = |values: &HashMap<String, String>| values.values().any(|v| v.contains(user));
    let traced: Vec<String> = receiver
        .spans()
        .iter()
        .filter(|s| {
            names(&s.attributes)
                || s.status_message.contains(user)
                || s.links.iter().any(|(_, _, attributes)| names(attributes))
        })
        .map(|s| format!("{} {:?}", s.name, s.attributes))
        .collect();
    assert!(traced.is_empty(), "spans naming the user: {traced:#?}");
}

/// With no endpoint set nothing is exported, not even to the default
/// OTLP port, yet the client's context still rides on the Kafka message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_endpoint_nothing_is_sent_and_the_client_context_passes_through() {
    let (receiver, _) = Receiver::start("127.0.0.1:4318").await;
    let kafka = kafka();
    let pipeline = Pipeline::start(
        &kafka,
        "off",
        &[
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_SERVICE_NAME", "eventpipe-untraced"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let event_id = "0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f72";
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let response = pipeline
        .post(
            serde_json::json!({"event_id": event_id, "user_id": "user-untraced", "type": "purchase",
                               "payload": {"amount": 5000.0, "currency": "USD"}}),
            &traceparent,
        )
        .await;
    assert_eq!(response.status(), 202);
    pipeline.wait_stored(event_id).await;
    let events = headers_on(&kafka, "events");
    assert_eq!(events[0]["traceparent"], traceparent);
    let anomalies = headers_on(&kafka, "anomalies");
    assert_eq!(anomalies[0]["traceparent"], traceparent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*receiver.requests.lock().unwrap(), 0);
    assert!(
        !pipeline.logs().iter().any(|l| l.contains("\"trace_id\"")),
        "no trace ids in the logs"
    );
}
