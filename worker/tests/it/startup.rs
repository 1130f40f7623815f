//! Start-up fails fast and names what to fix: an unreachable database, an
//! unmigrated one, an unreachable broker, a missing topic.

use crate::support::*;
use eventpipe_worker::config::WorkerConfig;

fn config(vars: std::collections::HashMap<String, String>) -> WorkerConfig {
    WorkerConfig::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

async fn start_error(config: WorkerConfig) -> String {
    match eventpipe_worker::start(config).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => format!("{e:#}"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_missing_piece_is_named() {
    let db = TestDb::create().await;
    let kafka = kafka();

    let mut vars = worker_vars(&kafka, &db, &[]);
    vars.insert(
        "DATABASE_URL".into(),
        format!("postgres://postgres@127.0.0.1:{}/x", free_port()),
    );
    let e = start_error(config(vars)).await;
    assert!(
        e.contains("cannot reach PostgreSQL") && e.contains("(DATABASE_URL)"),
        "{e}"
    );

    let unmigrated = format!("eventpipe_test_{}", uuid::Uuid::new_v4().simple());
    db.admin(&format!("CREATE DATABASE {unmigrated}")).await;
    let mut vars = worker_vars(&kafka, &db, &[]);
    vars.insert("DATABASE_URL".into(), format!("{SERVER}/{unmigrated}"));
    let e = start_error(config(vars.clone())).await;
    assert!(e.contains("eventpipe-worker migrate"), "{e}");
    // ... and DATABASE_MIGRATE=true fixes exactly that.
    vars.insert("DATABASE_MIGRATE".into(), "true".into());
    assert!(eventpipe_worker::start(config(vars)).await.is_ok());
    db.admin(&format!("DROP DATABASE {unmigrated} WITH (FORCE)"))
        .await;

    let vars = worker_vars(&kafka, &db, &[("KAFKA_DLQ_TOPIC", "no-such-dlq")]);
    let e = start_error(config(vars)).await;
    assert!(
        e.contains("\"no-such-dlq\" (KAFKA_DLQ_TOPIC) does not exist"),
        "{e}"
    );

    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut vars = worker_vars(&kafka, &db, &[("KAFKA_CONNECT_TIMEOUT_MS", "1000")]);
    vars.insert("KAFKA_BOOTSTRAP_SERVERS".into(), nowhere.clone());
    let e = start_error(config(vars)).await;
    assert!(
        e.contains(&format!(
            "cannot reach Kafka at {nowhere} (KAFKA_BOOTSTRAP_SERVERS)"
        )),
        "{e}"
    );
}
