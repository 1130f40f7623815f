//! The integration tests of the load generator, in one binary: one link (of
//! librdkafka and everything else) instead of one per file, and tests of
//! every file share the process's thread pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod control;
mod exit_codes;
mod make;
mod pacer;
mod readme;
mod retention;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The pacer tests measure how evenly requests arrive, so nothing else of
/// this binary may load the machine while they run: they hold this
/// exclusively, every other test shares it.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// For a test that measures time: runs alone.
async fn alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// For every other async test: runs beside the others, never beside a
/// pacer test.
async fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// [`alone`], for tests outside a runtime.
fn alone_blocking() -> RwLockWriteGuard<'static, ()> {
    MACHINE.blocking_write()
}

/// [`shared`], for tests outside a runtime.
fn shared_blocking() -> RwLockReadGuard<'static, ()> {
    MACHINE.blocking_read()
}

/// The local pipeline on free ports, storing in `database_url`, with
/// `extra` settings.
async fn local_run(database_url: &str, extra: &[(&str, &str)]) -> eventpipe_local::Pipeline {
    let vars: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("API_ADDR", "127.0.0.1:0"),
        ("WORKER_ADDR", "127.0.0.1:0"),
        ("WORKER_BATCH_WAIT_MS", "50"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    eventpipe_local::Pipeline::start(move |name| vars.get(name).cloned())
        .await
        .unwrap()
}
