//! A throw-away database for one benchmark: a SQLite file in a temporary
//! directory, or a fresh PostgreSQL database that is dropped afterwards.

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use super::BenchError;
use crate::db::{self, Backend};

/// A migrated scratch database; call [`Scratch::remove`] when done.
pub struct Scratch {
    pub url: String,
    pub backend: Backend,
    pub db: DatabaseConnection,
    dir: Option<std::path::PathBuf>,
    pg: Option<(String, String)>,
}

impl Scratch {
    /// Creates it. `postgres_server` is a URL of a database on the server
    /// where the scratch database may be created (e.g. `.../postgres`).
    pub async fn create(
        backend: Backend,
        postgres_server: &str,
        max_connections: u32,
    ) -> Result<Self, BenchError> {
        let (url, dir, pg) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!(
                    "kiln-bench-{}-{}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                std::fs::create_dir_all(&dir).map_err(|e| BenchError::Scratch(e.to_string()))?;
                let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let name = format!(
                    "kiln_bench_{}_{}",
                    std::process::id(),
                    rand::random::<u32>()
                );
                let admin = admin_connection(postgres_server)
                    .await
                    .map_err(|e| BenchError::Scratch(format!("{postgres_server}: {e}")))?;
                db::bench::create_database(&admin, &name).await?;
                let _ = admin.close().await;
                let mut url = url::Url::parse(postgres_server)
                    .map_err(|e| BenchError::Scratch(e.to_string()))?;
                url.set_path(&name);
                (
                    url.to_string(),
                    None,
                    Some((postgres_server.to_string(), name)),
                )
            }
        };
        let db = db::connect(&url, max_connections)
            .await
            .map_err(|e| BenchError::Scratch(e.to_string()))?;
        db::migrate(&db)
            .await
            .map_err(|e| BenchError::Scratch(e.to_string()))?;
        Ok(Self {
            url,
            backend,
            db,
            dir,
            pg,
        })
    }

    /// Closes the pool and deletes the database.
    pub async fn remove(self) {
        let _ = self.db.close().await;
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((server, name)) = self.pg {
            if let Ok(admin) = admin_connection(&server).await {
                let _ = db::bench::drop_database(&admin, &name).await;
                let _ = admin.close().await;
            }
        }
    }
}

/// A connection to the server for creating and dropping scratch databases.
/// Quiet: dropping a large one takes seconds, which is no news.
async fn admin_connection(server: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(server.to_string());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options).await
}
