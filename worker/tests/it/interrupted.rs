//! The worker process stopped mid-stream, hard (SIGKILL: no shutdown, no
//! final commit) or gracefully (SIGTERM: exit 0 after the batch in flight),
//! then started again: the rows equal the accepted events exactly, none
//! lost, none doubled.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use eventpipe_embedded_kafka::EmbeddedKafka;

fn spawn_worker(kafka: &EmbeddedKafka, db: &TestDb) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eventpipe-worker"))
        .envs(worker_vars(
            kafka,
            db,
            &[
                ("WORKER_ADDR", "127.0.0.1:0"),
                ("WORKER_BATCH_SIZE", "500"),
                // The killed member holds its partitions until its session
                // expires; keep that short so the restart takes over soon.
                (
                    "KAFKA_CONFIG",
                    "session.timeout.ms=6000;heartbeat.interval.ms=500",
                ),
            ],
        ))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[derive(Clone, Copy)]
enum Stop {
    Kill,
    Terminate,
}

fn stop(worker: &mut Child, how: Stop) {
    match how {
        Stop::Kill => worker.kill().unwrap(),
        Stop::Terminate => {
            let sent = Command::new("kill")
                .args(["-TERM", &worker.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
        }
    }
    let status = worker.wait().unwrap();
    if let Stop::Terminate = how {
        assert!(status.success(), "SIGTERM must end in exit 0, got {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_doubles_nothing() {
    stopped_mid_stream(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_exits_0_and_loses_and_doubles_nothing() {
    stopped_mid_stream(Stop::Terminate).await;
}

async fn stopped_mid_stream(how: Stop) {
    let db = TestDb::create().await;
    let kafka = kafka();
    let api = start_api(&kafka).await;
    wait_ready(&api).await;
    let mut worker = spawn_worker(&kafka, &db);

    let mut stream = EventStream::new(&api, 13);
    // Stream until the worker is visibly storing, then stop it while events
    // keep coming.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db.events().await <= 500 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never stored 500 events"
        );
        stream.post_round().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream.post_round().await;
    stop(&mut worker, how);
    for _ in 0..5 {
        stream.post_round().await;
    }
    worker = spawn_worker(&kafka, &db);
    for _ in 0..5 {
        stream.post_round().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.assert_each_stored_once(stream.accepted, Duration::from_secs(60))
        .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    api.stop().await.unwrap();
}
