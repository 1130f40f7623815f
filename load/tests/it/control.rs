//! The emitter's controls, as a user drives them: `eventpipe-load
//! --forever --control ADDR` (the binary, against its built-in null
//! server) changes its rate, pauses, bursts, says what it does, and
//! refuses bad bodies naming the field.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Emitter {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Emitter {
    async fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_eventpipe-load"))
            .args(["--calibrate", "--forever", "--no-progress", "--no-summary"])
            .args(["--control", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let emitter = Emitter {
            child,
            base,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !emitter
            .http
            .get(emitter.url("/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "the controls never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        emitter
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn settings(&self) -> Value {
        let response = self.http.get(self.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Events sent over `window`.
    async fn sent_over(&self, window: Duration) -> u64 {
        let before = self.settings().await["totals"]["sent"].as_u64().unwrap();
        tokio::time::sleep(window).await;
        self.settings().await["totals"]["sent"].as_u64().unwrap() - before
    }

    /// Sends `body` with `method` to `path`: status and answer.
    async fn send(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controls_change_the_rate_burst_pause_and_name_bad_fields() {
    // It measures rates, so nothing else of this binary runs beside it.
    let _machine = crate::alone().await;
    let emitter = Emitter::start(&[
        "--executor",
        "constant-arrival-rate",
        "--events-rate",
        "100",
        "--batch-size",
        "2",
        "--duration",
        "10m",
    ])
    .await;
    let settings = emitter.settings().await;
    assert_eq!(settings["rate"], 100.0, "{settings}");
    assert_eq!(settings["mean_batch"], 2.0);
    assert_eq!(settings["batch_size"], "2:1");
    assert!(settings["mix"].is_string() && settings["users"].is_u64());

    // 100 events/s: about 200 in 2 s.
    let sent = emitter.sent_over(Duration::from_secs(2)).await;
    assert!((120..=280).contains(&sent), "{sent} events in 2 s at 100/s");

    let (status, answer) = emitter
        .send(reqwest::Method::PUT, "/rate", r#"{"rate": 600}"#)
        .await;
    assert_eq!((status, answer["rate"].clone()), (200, json!(600.0)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = emitter.sent_over(Duration::from_secs(2)).await;
    assert!(
        (800..=1600).contains(&sent),
        "{sent} events in 2 s at 600/s"
    );

    // Paused, then a burst of 400 over a second.
    emitter
        .send(reqwest::Method::PUT, "/rate", r#"{"rate": 0}"#)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = emitter.sent_over(Duration::from_secs(1)).await;
    assert!(sent <= 20, "{sent} events in 1 s while paused");
    let (status, answer) = emitter
        .send(
            reqwest::Method::POST,
            "/burst",
            r#"{"events": 400, "over": "1s"}"#,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["bursts"].as_array().unwrap().len(), 1, "{answer}");
    let sent = emitter.sent_over(Duration::from_millis(1800)).await;
    assert!(
        (300..=460).contains(&sent),
        "{sent} events of a burst of 400"
    );

    let metrics = emitter
        .http
        .get(emitter.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\neventpipe_load_events_sent_total "),
        "{metrics}"
    );
    assert!(metrics.contains("\neventpipe_load_events_accepted_total "));
    assert!(
        metrics.contains("\neventpipe_load_rate_events_per_second 0\n"),
        "{metrics}"
    );

    for (method, path, body, pointer, says) in [
        (reqwest::Method::PUT, "/rate", "fast", "", "not JSON"),
        (reqwest::Method::PUT, "/rate", "[1]", "", "JSON object"),
        (
            reqwest::Method::PUT,
            "/rate",
            r#"{"rate": "fast"}"#,
            "/rate",
            "must be a number",
        ),
        (
            reqwest::Method::PUT,
            "/rate",
            r#"{"rate": -1}"#,
            "/rate",
            "from 0 to",
        ),
        (
            reqwest::Method::PUT,
            "/rate",
            "{}",
            "/rate",
            "rate is required",
        ),
        (
            reqwest::Method::PUT,
            "/rate",
            r#"{"rate": 1, "speed": 2}"#,
            "",
            "unknown field \"speed\"",
        ),
        (
            reqwest::Method::POST,
            "/burst",
            r#"{"events": 0}"#,
            "/events",
            "from 1 to",
        ),
        (
            reqwest::Method::POST,
            "/burst",
            r#"{"events": 1.5}"#,
            "/events",
            "whole number",
        ),
        (
            reqwest::Method::POST,
            "/burst",
            r#"{"events": 10, "over": "soon"}"#,
            "/over",
            "over:",
        ),
        (
            reqwest::Method::POST,
            "/burst",
            r#"{"events": 10, "over": "0s"}"#,
            "/over",
            "longer than 0",
        ),
        (
            reqwest::Method::POST,
            "/burst",
            r#"{"events": 10, "over": 5}"#,
            "/over",
            "a duration",
        ),
    ] {
        let (status, problem) = emitter.send(method.clone(), path, body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {problem}");
        assert_eq!(problem["pointer"], pointer, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{body}: {problem}"
        );
    }
    assert_eq!(emitter.send(reqwest::Method::GET, "/nope", "").await.0, 404);
    assert_eq!(
        emitter.send(reqwest::Method::DELETE, "/rate", "").await.0,
        405
    );
    // The rate was never changed by a refused request.
    assert_eq!(emitter.settings().await["rate"], 0.0);
}

/// The controls need --forever and a constant arrival rate: refused at
/// once (exit 104) otherwise, naming why.
#[test]
fn the_controls_need_forever_and_a_constant_rate() {
    let _machine = crate::shared_blocking();
    for args in [
        &["--control", "127.0.0.1:0", "--calibrate"][..],
        &[
            "--control",
            "127.0.0.1:0",
            "--forever",
            "--executor",
            "constant-vus",
        ][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_eventpipe-load"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(104), "{args:?}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains("--forever and constant-arrival-rate"),
            "{said}"
        );
    }
}
