//! Connecting: the pool, the readiness ping, the schema check, migrations,
//! and creating a database for the local run.

use anyhow::Context;
use diesel::sql_types::Text;
use diesel::{QueryableByName, sql_query};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
pub use eventpipe_service::settings::redact_url;

/// The migrations in `migrations/`, built into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// A pool of PostgreSQL connections.
pub type DbPool = Pool<AsyncPgConnection>;

/// A connection taken from the pool, returned to it when dropped.
pub type Connection<'a> =
    diesel_async::pooled_connection::bb8::PooledConnection<'a, AsyncPgConnection>;

/// A connection from `pool`, or [`StoreError::Unavailable`]: the caller's
/// statements and transactions run on it (with [`AsyncConnection`]).
pub async fn connection(pool: &DbPool) -> Result<Connection<'_>, crate::error::StoreError> {
    pool.get()
        .await
        .map_err(|e| crate::error::StoreError::Unavailable(e.to_string()))
}

/// One connection of its own to `database_url` (for a command, outside
/// any pool).
pub async fn connect(database_url: &str) -> Result<AsyncPgConnection, diesel::ConnectionError> {
    AsyncPgConnection::establish(database_url).await
}

/// Builds the pool. Connections are made lazily, so this succeeds while the
/// database is down; [`ping`] says whether it answers.
pub async fn pool(database_url: &str, size: u32) -> anyhow::Result<DbPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder()
        .max_size(size)
        // Fail fast while the database is down: the caller retries with backoff.
        .connection_timeout(std::time::Duration::from_secs(2))
        .retry_connection(false)
        .build(manager)
        .await
        .with_context(|| {
            format!(
                "creating the PostgreSQL pool for {}",
                redact_url(database_url)
            )
        })
}

/// True when a pooled connection answers a trivial query.
pub async fn ping(pool: &DbPool) -> bool {
    match pool.get().await {
        Ok(mut conn) => sql_query("SELECT 1").execute(&mut conn).await.is_ok(),
        Err(_) => false,
    }
}

#[derive(QueryableByName)]
struct Missing {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The relations the worker reads and writes, newest migration's last.
const REQUIRED_RELATIONS: [&str; 8] = [
    "events",
    "anomalies",
    "anomaly_outbox",
    "event_counts_minute",
    "event_counts_5min",
    "event_counts_hour",
    "v_events",
    "retention",
];

/// Fails, saying what to do, when the database cannot be reached or its
/// schema is not migrated to this version.
pub async fn check_schema(database_url: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (DATABASE_URL)",
                redact_url(database_url)
            )
        })?;
    let missing: Vec<Missing> =
        sql_query("SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL")
            .bind::<diesel::sql_types::Array<Text>, _>(REQUIRED_RELATIONS.as_slice())
            .load(&mut conn)
            .await?;
    anyhow::ensure!(
        missing.is_empty(),
        "{} missing in {}: run `eventpipe-worker migrate` (or set DATABASE_MIGRATE=true)",
        missing
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        redact_url(database_url)
    );
    Ok(())
}

/// Applies pending migrations; returns how many ran.
pub async fn migrate(database_url: &str) -> anyhow::Result<usize> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .with_context(|| format!("connecting to {} (DATABASE_URL)", redact_url(database_url)))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    for version in &applied {
        tracing::info!(%version, "applied migration");
    }
    Ok(applied.len())
}

#[derive(QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Creates the database `database_url` names when it does not exist, by
/// connecting to the server's `postgres` database. For the local run and
/// tests; production databases are made by their operators.
pub async fn create_database_if_missing(database_url: &str) -> anyhow::Result<bool> {
    let (server, name) = database_url
        .rsplit_once('/')
        .filter(|(_, name)| !name.is_empty() && !name.contains('?'))
        .context("DATABASE_URL must end in /<database name> (no query string)")?;
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name {name:?} in DATABASE_URL must be letters, digits and _"
    );
    let admin_url = format!("{server}/postgres");
    let mut conn = AsyncPgConnection::establish(&admin_url)
        .await
        .with_context(|| {
            format!(
                "connecting to {} (DATABASE_URL's server)",
                redact_url(&admin_url)
            )
        })?;
    let existing: Vec<DatabaseName> =
        sql_query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .load(&mut conn)
            .await?;
    if existing.iter().any(|d| d.datname == name) {
        return Ok(false);
    }
    sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating database {name}"))?;
    tracing::info!(database = name, "created database");
    Ok(true)
}
