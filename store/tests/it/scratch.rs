//! Scratch databases are copies of the migrated template: every relation
//! the worker needs is there at once, and each copy is its own database,
//! gone when the value is dropped.

use diesel::sql_query;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_store::ScratchDatabase;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<Count> = sql_query(sql).load(&mut conn).await.unwrap();
    rows[0].n
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_are_migrated_separate_and_dropped() {
    let server = crate::server();
    let (a, b) = tokio::join!(
        ScratchDatabase::create(&server, "eventpipe_store_test"),
        ScratchDatabase::create(&server, "eventpipe_store_test"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.name(), b.name());
    eventpipe_store::check_schema(&a.url).await.unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .unwrap()
        .count() as i64;
    assert_eq!(
        count(
            &a.url,
            "SELECT count(*) AS n FROM __diesel_schema_migrations"
        )
        .await,
        migrations
    );
    let mut conn = AsyncPgConnection::establish(&a.url).await.unwrap();
    sql_query(
        "INSERT INTO event_counts_minute VALUES (date_trunc('minute', now()), 'login', 'api', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        count(&a.url, "SELECT count(*) AS n FROM event_counts_minute").await,
        1
    );
    assert_eq!(
        count(&b.url, "SELECT count(*) AS n FROM event_counts_minute").await,
        0
    );
    let name = a.name().to_owned();
    drop(a);
    let admin = format!("{server}/postgres");
    let left = count(
        &admin,
        &format!("SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"),
    )
    .await;
    assert_eq!(left, 0, "{name} outlived its ScratchDatabase");
}
