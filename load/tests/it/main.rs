//! The integration tests of the load generator, in one binary: one link (of
//! librdkafka and everything else) instead of one per file, and tests of
//! every file share the process's thread pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
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
