//! The operations commands, run as a user runs them (the `eventpipe`
//! binary, configured by variables) against a whole pipeline started in
//! this process: an embedded Kafka, the API, the worker, and a database of
//! the test's own.

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_local::Pipeline;
use eventpipe_store::ScratchDatabase;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{Value, json};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

struct Ops {
    pipeline: Pipeline,
    db: ScratchDatabase,
}

/// What a command printed, and how it exited.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

impl Ops {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(extra: &[(&str, &str)]) -> Self {
        let db = ScratchDatabase::create(SERVER, "eventpipe_ops")
            .await
            .unwrap();
        let url = db.url.clone();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let pipeline = Pipeline::start(move |name| match name {
            "DATABASE_URL" => Some(url.clone()),
            "API_ADDR" | "WORKER_ADDR" => Some("127.0.0.1:0".to_owned()),
            "WORKER_BATCH_WAIT_MS" => Some("20".to_owned()),
            "KAFKA_LINGER_MS" => Some("1".to_owned()),
            other => extra
                .iter()
                .find(|(k, _)| k == other)
                .map(|(_, v)| v.clone()),
        })
        .await
        .unwrap();
        Ops { pipeline, db }
    }

    /// Runs `eventpipe ARGS` with the variables pointing at this pipeline,
    /// `vars` on top.
    fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Ran {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eventpipe"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in vars {
            command.env(k, v);
        }
        self.output(command)
    }

    /// Runs `command` with the variables pointing at this pipeline (those
    /// it sets already win).
    fn output(&self, mut command: Command) -> Ran {
        let set: Vec<String> = command
            .get_envs()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for (k, v) in [
            ("EVENTPIPE_API_URL", format!("http://{}", self.pipeline.api)),
            (
                "EVENTPIPE_WORKER_URL",
                format!("http://{}", self.pipeline.worker),
            ),
            ("DATABASE_URL", self.db.url.clone()),
            ("KAFKA_BOOTSTRAP_SERVERS", self.pipeline.bootstrap.clone()),
            ("KAFKA_CONNECT_TIMEOUT_MS", "3000".to_owned()),
        ] {
            if !set.iter().any(|s| s == k) {
                command.env(k, v);
            }
        }
        let output = tokio::task::block_in_place(|| command.output()).unwrap();
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `make -s TARGET EVENTPIPE=<this build's binary> ...` at the
    /// repository's root with the variables pointing at this pipeline.
    fn make(&self, target: &[&str]) -> Ran {
        let mut command = Command::new("make");
        command
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .arg("-s")
            .args(target)
            .arg(concat!("EVENTPIPE=", env!("CARGO_BIN_EXE_eventpipe")));
        self.output(command)
    }

    fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, &[])
    }

    /// `dlq redrive --reason REASON --json`.
    fn redrive_reason(&self, reason: &str) -> Value {
        self.run(&["dlq", "redrive", "--reason", reason, "--json"])
            .json()
    }

    async fn post(&self, events: Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/events", self.pipeline.api))
            .json(&events)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    }

    async fn sql(&self, statement: &str) {
        let mut conn = AsyncPgConnection::establish(&self.db.url).await.unwrap();
        sql_query(statement).execute(&mut conn).await.unwrap();
    }

    async fn count(&self, query: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = AsyncPgConnection::establish(&self.db.url).await.unwrap();
        let n: N = sql_query(query).get_result(&mut conn).await.unwrap();
        n.n
    }

    /// Waits until `check` holds, saying `what` if it never does.
    async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_for_rows(&self, query: &str, n: i64) {
        self.wait_until(query, || async { self.count(query).await == n })
            .await;
    }

    async fn wait_for_dlq(&self, n: i64) {
        self.wait_until(&format!("{n} DLQ message(s)"), || async {
            self.run(&["dlq", "list", "--json"]).json()["held"] == n
        })
        .await;
    }

    /// Puts `value` on the events topic as is, bypassing the API.
    fn produce_raw(&self, key: &str, value: &str) {
        let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.pipeline.bootstrap)
            .create()
            .unwrap();
        producer
            .send(BaseRecord::to("events").key(key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }
}

fn purchase(user: &str, amount: f64) -> Value {
    json!({"user_id": user, "type": "purchase", "payload": {"amount": amount, "currency": "USD"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_db_stats_and_topics_describe_the_running_pipeline() {
    let ops = Ops::start().await;
    ops.post(json!([
        purchase("u1", 5.0),
        purchase("u2", 5000.0),
        purchase("u1", 7.0)
    ]))
    .await;
    ops.wait_for_rows("SELECT count(*)::bigint AS n FROM events", 3)
        .await;
    ops.wait_until("the workers' commit", || async {
        ops.run(&["status", "--json"]).json()["kafka"]["topics"][0]["lag"] == 0
    })
    .await;

    let status = ops.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    let s = status.json();
    assert_eq!(s["api"]["ready"]["ok"], true);
    assert_eq!(s["worker"]["ready"]["ok"], true);
    assert_eq!(s["database"]["migrated"], true);
    assert_eq!(s["kafka"]["reachable"], true);
    assert_eq!(s["kafka"]["dlq_messages"], 0);
    let events = &s["kafka"]["topics"][0];
    assert_eq!(events["name"], "events");
    assert_eq!(events["messages"], 3);
    assert_eq!(events["partitions"].as_array().unwrap().len(), 6);
    let committed: i64 = events["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 3);
    let human = ops.run(&["status"]);
    assert!(human.stdout.contains("all ok"), "{}", human.stdout);
    assert!(
        human.stdout.contains("group eventpipe-worker lag 0"),
        "{}",
        human.stdout
    );

    // Each part down names the variable to fix, and the exit status says so.
    let closed = format!("http://127.0.0.1:{}", crate::free_port());
    let down = ops.run_with(
        &["status", "--json"],
        &[
            ("EVENTPIPE_API_URL", &closed),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
            ("KAFKA_CONNECT_TIMEOUT_MS", "500"),
            ("DATABASE_URL", &format!("{SERVER}/eventpipe_ops_missing")),
        ],
    );
    assert_eq!(down.code, 1);
    let d = down.json();
    assert!(
        d["api"]["health"]["error"]
            .as_str()
            .unwrap()
            .contains("EVENTPIPE_API_URL")
    );
    assert_eq!(d["worker"]["ready"]["ok"], true);
    assert!(
        d["kafka"]["error"]
            .as_str()
            .unwrap()
            .contains("KAFKA_BOOTSTRAP_SERVERS")
    );
    assert!(
        d["database"]["error"]
            .as_str()
            .unwrap()
            .contains("DATABASE_URL")
    );
    let human = ops.run_with(&["status"], &[("EVENTPIPE_API_URL", &closed)]);
    assert!(human.stdout.contains("DOWN"), "{}", human.stdout);

    // db-stats: the partition holding today's events, the sum on its table,
    // the newest event, the anomaly by rule.
    let stats = ops.run(&["db-stats", "--exact", "--json"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let st = stats.json();
    let table = |name: &str| {
        st["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {st}"))
            .clone()
    };
    assert_eq!(table("events")["rows"], 3);
    let today = format!("events_{}", chrono::Utc::now().format("%Y%m%d"));
    assert_eq!(table(&today)["rows"], 3);
    assert_eq!(table(&today)["partition_of"], "events");
    assert!(table(&today)["bytes"].as_i64().unwrap() > 0);
    assert_eq!(table("anomalies")["rows"], 1);
    assert!(st["newest_event"]["stored_at"].is_string());
    assert_eq!(
        st["anomalies_last_hour"],
        json!([{"rule": "high_value_purchase", "anomalies": 1}])
    );
    let human = ops.run(&["db-stats"]);
    assert!(human.stdout.contains(&today), "{}", human.stdout);
    assert!(human.stdout.contains("high_value_purchase"));

    // topics
    let topics = ops.run(&["topics", "--json"]).json();
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["anomalies", "events", "events.dlq"]);
    let described = ops.run(&["topics", "describe", "events", "--json"]).json();
    assert_eq!(described["messages"], 3);
    let partition = &described["partitions"][0];
    assert!(partition["leader"].as_i64().unwrap() >= 1);
    assert!(!partition["replicas"].as_array().unwrap().is_empty());
    let missing = ops.run(&["topics", "describe", "nope"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no topic \"nope\""),
        "{}",
        missing.stderr
    );

    // Kafka unreachable in a command that needs it: the variable is named.
    let unreachable = ops.run_with(
        &["topics"],
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
            ("KAFKA_CONNECT_TIMEOUT_MS", "500"),
        ],
    );
    assert_ne!(unreachable.code, 0);
    assert!(
        unreachable.stderr.contains("KAFKA_BOOTSTRAP_SERVERS"),
        "{}",
        unreachable.stderr
    );
}

/// A message refused by the database is redriven after the cause is fixed
/// and stored once; a message that still cannot be stored returns to the
/// DLQ once; a second run of either redrive does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_message_is_stored_once_and_a_broken_one_returns_to_the_dlq_once() {
    let ops = Ops::start().await;
    // A cause the operator can fix: a constraint the event breaks.
    ops.sql("ALTER TABLE events ADD CONSTRAINT ops_test_blocked CHECK (user_id <> 'blocked')")
        .await;
    ops.post(json!(purchase("blocked", 5.0))).await;
    ops.wait_for_dlq(1).await;
    ops.produce_raw("someone", "not json at all");
    ops.wait_for_dlq(2).await;

    let listed = ops.run(&["dlq", "list", "--json"]).json();
    assert_eq!(
        listed["by_reason"],
        json!({"not_json": 1, "refused_by_database": 1})
    );
    let refused = ops
        .run(&["dlq", "list", "--reason", "refused_by_database", "--json"])
        .json();
    assert_eq!(refused["matched"], 1);
    let letter = &refused["messages"][0];
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains("ops_test_blocked")
    );
    assert_eq!(letter["key"], "blocked");
    assert!(letter["source"].as_str().unwrap().starts_with("events/"));
    let event_id = letter["event_id"].as_str().unwrap().to_owned();

    // A choice is required; a dry run changes nothing.
    let unchosen = ops.run(&["dlq", "redrive"]);
    assert_ne!(unchosen.code, 0);
    assert!(
        unchosen.stderr.contains("choose what to redrive"),
        "{}",
        unchosen.stderr
    );
    let dry = ops
        .run(&[
            "dlq",
            "redrive",
            "--reason",
            "refused_by_database",
            "--dry-run",
            "--json",
        ])
        .json();
    assert_eq!(dry["redriven"], 1);
    assert_eq!(dry["messages"][0]["action"], "would_redrive");
    assert_eq!(
        ops.count("SELECT count(*)::bigint AS n FROM dlq_redrives")
            .await,
        0
    );

    // Fixed: redriven, stored once.
    ops.sql("ALTER TABLE events DROP CONSTRAINT ops_test_blocked")
        .await;
    let redrove = ops.redrive_reason("refused_by_database");
    assert_eq!(redrove["redriven"], 1);
    assert_eq!(redrove["messages"][0]["action"], "redriven");
    let stored = format!("SELECT count(*)::bigint AS n FROM events WHERE event_id = '{event_id}'");
    ops.wait_for_rows(&stored, 1).await;

    // Still broken: it goes back to the DLQ once.
    let offset = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["reason"] == "not_json")
        .map(|m| format!("{}:{}", m["partition"], m["offset"]))
        .unwrap();
    let human = ops.run(&["dlq", "redrive", "--offset", &offset]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("redrove 1 message(s)"),
        "{}",
        human.stdout
    );
    ops.wait_for_dlq(3).await;

    // A second run of each does nothing.
    let again = ops
        .run(&["dlq", "redrive", "--reason", "not_json", "--json"])
        .json();
    assert_eq!(again["redriven"], 0);
    let actions: Vec<&str> = again["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["already_redriven", "failed_again"]);
    let again = ops.redrive_reason("refused_by_database");
    assert_eq!(again["redriven"], 0);
    assert_eq!(again["messages"][0]["action"], "already_redriven");

    // Not a loop: nothing more arrives, and the event is still stored once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ops.wait_for_dlq(3).await;
    assert_eq!(ops.count(&stored).await, 1);
    let listed = ops.run(&["dlq", "list"]);
    assert!(listed.stdout.contains("[redriven "), "{}", listed.stdout);
    assert!(
        listed
            .stdout
            .contains("failed again after a redrive of events.dlq/"),
        "{}",
        listed.stdout
    );
    assert_eq!(
        ops.count("SELECT count(*)::bigint AS n FROM dlq_redrives")
            .await,
        2
    );
}

/// With `API_INVALID_TOPIC` set, `invalid list` shows what the API kept of
/// a rejected request; without it, the command says which variable to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_list_shows_the_rejected_events_kept() {
    let ops = Ops::start_with(&[("API_INVALID_TOPIC", "events.invalid")]).await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/events", ops.pipeline.api))
        .json(&json!([purchase("u1", 5.0), purchase("u2", -3.0)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let list_json = || {
        ops.run_with(
            &["invalid", "list", "--json"],
            &[("API_INVALID_TOPIC", "events.invalid")],
        )
    };
    // Kept in the background, after the answer.
    ops.wait_until("the rejected event kept", || async {
        list_json().json()["held"] == 1
    })
    .await;
    let kept = list_json();
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let list = kept.json();
    assert_eq!(list["events"][0]["index"], 1);
    assert_eq!(list["events"][0]["event"]["user_id"], "u2");
    assert_eq!(list["events"][0]["errors"][0]["pointer"], "/payload/amount");
    let human = ops.run_with(
        &["invalid", "list"],
        &[("API_INVALID_TOPIC", "events.invalid")],
    );
    assert!(
        human
            .stdout
            .contains("/payload/amount: must be a number >= 0"),
        "{}",
        human.stdout
    );
    let unset = ops.run(&["invalid", "list"]);
    assert_ne!(unset.code, 0);
    assert!(
        unset.stderr.contains("API_INVALID_TOPIC"),
        "{}",
        unset.stderr
    );
}

/// The Makefile's operations targets run the real commands against a
/// running pipeline (`make status` and the others, as a user types them
/// beside `make run`), and `make run` starts the pipeline and stops it
/// cleanly on Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_makefile_targets_run_the_real_commands() {
    let ops = Ops::start().await;
    ops.post(json!(purchase("u1", 5.0))).await;
    ops.wait_for_rows("SELECT count(*)::bigint AS n FROM events", 1)
        .await;
    for (target, says) in [
        (&["status"][..], "all ok"),
        (&["db-stats"][..], "events"),
        (&["topics"][..], "events.dlq"),
        (&["dlq"][..], "0 message(s)"),
        (
            &["dlq", "ARGS=redrive --reason not_json --dry-run"][..],
            "would redrive 0",
        ),
    ] {
        let ran = ops.make(target);
        assert_eq!(ran.code, 0, "make {target:?}: {}{}", ran.stdout, ran.stderr);
        assert!(ran.stdout.contains(says), "make {target:?}: {}", ran.stdout);
    }

    // `make run`: its own database and ports, up, then Ctrl-C, exit 0.
    let db = ScratchDatabase::create(SERVER, "eventpipe_ops")
        .await
        .unwrap();
    let (api, worker) = (crate::free_port(), crate::free_port());
    let mut run = Command::new("make")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "-s",
            "run",
            concat!("EVENTPIPE=", env!("CARGO_BIN_EXE_eventpipe")),
        ])
        .env("DATABASE_URL", &db.url)
        .env("API_ADDR", format!("127.0.0.1:{api}"))
        .env("WORKER_ADDR", format!("127.0.0.1:{worker}"))
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = reqwest::get(format!("http://127.0.0.1:{api}/ready")).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "make run: the API never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // make forwards nothing: signal the pipeline itself, as Ctrl-C in a
    // terminal signals the whole foreground group.
    let pids = Command::new("pgrep")
        .args(["-P", &run.id().to_string()])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        Command::new("kill").args(["-INT", pid]).status().unwrap();
    }
    let status = tokio::task::block_in_place(|| run.wait()).unwrap();
    assert!(status.success(), "make run exited {status:?}");
}
