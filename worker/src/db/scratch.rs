//! Databases of their own for tests and benchmarks: created and migrated on
//! [`ScratchDatabase::create`], dropped with everything in them when the
//! value is dropped, also when a test panics.

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// A database that lives as long as this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// Its URL.
    pub url: String,
    name: String,
    server: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on `server` (`postgres://user@host:port`)
    /// and applies the migrations.
    pub async fn create(server: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{server}/{name}");
        super::create_database_if_missing(&url).await?;
        let database = Self {
            url,
            name,
            server: server.to_owned(),
        };
        super::migrate(&database.url).await?;
        Ok(database)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
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
                if let Ok(mut admin) =
                    AsyncPgConnection::establish(&format!("{server}/postgres")).await
                {
                    let _ = sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
