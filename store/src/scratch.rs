//! Databases of their own for tests and benchmarks: [`ScratchDatabase::create`]
//! clones a migrated template (`CREATE DATABASE … TEMPLATE`, a file copy
//! on the server, instead of running every migration again), and the
//! database is dropped with everything in it when the value is dropped,
//! also when a test panics.
//!
//! The template is made once per server and version of `migrations/`: its
//! name carries a hash of the migration files, so editing a migration makes
//! a new one (and older ones are dropped). Test processes running at once
//! make it under an advisory lock, so only one migrates it; nobody stays
//! connected to it, which `CREATE DATABASE … TEMPLATE` requires.

use std::hash::{Hash, Hasher};
use std::path::Path;

use anyhow::Context;
use diesel::sql_types::Text;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Prefix of template database names; the rest is the migrations' hash.
const TEMPLATE_PREFIX: &str = "eventpipe_template_";
/// Advisory lock key held while a template is made (any constant will do).
const TEMPLATE_LOCK: i64 = 0x6576_656e_7470_6970;

/// A database that lives as long as this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// Its URL.
    pub url: String,
    name: String,
    server: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on `server` (`postgres://user@host:port`)
    /// as a copy of the migrated template.
    pub async fn create(server: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin(server).await?;
        let template = template(server, &mut admin).await?;
        sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating {name} from {template}"))?;
        Ok(Self {
            url: format!("{server}/{name}"),
            name,
            server: server.to_owned(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn admin(server: &str) -> anyhow::Result<AsyncPgConnection> {
    let url = format!("{server}/postgres");
    AsyncPgConnection::establish(&url)
        .await
        .with_context(|| format!("connecting to {}", crate::database::redact_url(&url)))
}

/// The template for this version of the migrations, made if missing.
async fn template(server: &str, admin: &mut AsyncPgConnection) -> anyhow::Result<String> {
    let name = format!("{TEMPLATE_PREFIX}{:016x}", migrations_hash()?);
    if exists(admin, &name).await? {
        return Ok(name);
    }
    // Session-level lock: released when this connection closes, also if
    // this process dies half-way.
    sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .execute(admin)
        .await?;
    let made = make_template(server, admin, &name).await;
    sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .execute(admin)
        .await?;
    made.map(|()| name)
}

async fn make_template(
    server: &str,
    admin: &mut AsyncPgConnection,
    name: &str,
) -> anyhow::Result<()> {
    if exists(admin, name).await? {
        return Ok(()); // another process made it while we waited
    }
    let stale: Vec<Name> = sql_query("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind::<Text, _>(format!("{TEMPLATE_PREFIX}%"))
        .load(admin)
        .await?;
    for old in stale {
        sql_query(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            old.datname
        ))
        .execute(admin)
        .await?;
    }
    // Built under a temporary name and renamed when complete, so a process
    // killed mid-migration never leaves a half-made template behind.
    let building = format!("{name}_building");
    sql_query(format!(
        "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
    ))
    .execute(admin)
    .await?;
    sql_query(format!("CREATE DATABASE \"{building}\""))
        .execute(admin)
        .await?;
    crate::database::migrate(&format!("{server}/{building}")).await?;
    sql_query(format!(
        "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
    ))
    .execute(admin)
    .await?;
    tracing::info!(template = name, "made the migrated template database");
    Ok(())
}

async fn exists(admin: &mut AsyncPgConnection, name: &str) -> anyhow::Result<bool> {
    let found: Vec<Name> = sql_query("SELECT datname FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .load(admin)
        .await?;
    Ok(!found.is_empty())
}

/// A hash of every file under `migrations/` (names and contents).
fn migrations_hash() -> anyhow::Result<u64> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files = Vec::new();
    walk(&root, &mut files).with_context(|| format!("reading {}", root.display()))?;
    files.sort();
    let mut hasher = std::hash::DefaultHasher::new();
    for file in files {
        file.strip_prefix(&root)?.hash(&mut hasher);
        std::fs::read(&file)?.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop may run inside a runtime or outside any; a thread with its
        // own runtime works in both.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = admin(&server).await {
                    let _ = sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
