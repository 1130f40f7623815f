//! The local run's private PostgreSQL: started from the machine's server
//! binaries in a directory of its own, on a free port, usable by the
//! services (created, migrated), stopped on drop, and its data kept for the
//! next start. (The run starts one only when `DATABASE_URL` is unset and
//! nothing answers at 127.0.0.1:5432, which the machine's own cluster
//! does while the other tests run.)

use eventpipe_local::postgres::{PrivatePostgres, answers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_server_starts_serves_stops_and_keeps_its_data() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("eventpipe-postgres-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let server = tokio::task::block_in_place(|| PrivatePostgres::start(&dir)).unwrap();
    let address = format!("127.0.0.1:{}", server.port());
    assert!(answers(&address));
    let url = server.url("eventpipe");
    eventpipe_store::create_database_if_missing(&url)
        .await
        .unwrap();
    assert!(eventpipe_store::migrate(&url).await.unwrap() > 0);
    eventpipe_store::check_schema(&url).await.unwrap();
    tokio::task::block_in_place(|| drop(server));
    assert!(!answers(&address), "stopped with the value");

    // Started again on the same directory: the data is still there.
    let again = tokio::task::block_in_place(|| PrivatePostgres::start(&dir)).unwrap();
    let url = again.url("eventpipe");
    eventpipe_store::check_schema(&url).await.unwrap();
    assert_eq!(eventpipe_store::migrate(&url).await.unwrap(), 0);
    tokio::task::block_in_place(|| drop(again));
    let _ = std::fs::remove_dir_all(&dir);
}
