//! The database: connecting, migrating, and the typed repository functions
//! every layer above uses instead of touching entities directly.
//!
//! Architecture invariant: SQL lives here and in `migration/`; actors, jigs
//! and the API call these functions and get [`RepoError`]s, never `DbErr`s.

pub mod bench;
pub mod bmcs;
pub mod bootenvs;
pub mod deployments;
mod error;
pub mod hosts;
pub mod inventory;
pub mod leases;
pub mod networks;
pub mod noderoles;
pub mod nodes;
pub mod reboots;
pub mod roles;
pub mod runs;
mod sql;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

pub use error::{RepoError, RepoResult};

/// How API paths and cluster files name a row: by id or by unique name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Id(i64),
    Name(String),
}

impl Key {
    /// All digits is an id; anything else is a name (names are never all digits).
    pub fn parse(raw: &str) -> Self {
        match raw.parse::<i64>() {
            Ok(id) if !raw.starts_with('+') => Key::Id(id),
            _ => Key::Name(raw.to_string()),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Id(id) => write!(f, "{id}"),
            Key::Name(name) => f.write_str(name),
        }
    }
}

/// Which database engine a connection talks to (shown by `/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of an open connection.
    pub fn of(db: &DatabaseConnection) -> Self {
        match db.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// Why kiln could not get a usable database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("database.url `{0}` is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "the database has migrations this kiln does not know ({0}); it was written by a newer kiln"
    )]
    NewerSchema(String),
    #[error("migrating the database failed: {0}")]
    Migrate(String),
}

/// Opens a pool to `url`; SQLite files are created on first use.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DatabaseError> {
    let url = normalise_url(url)?;
    let sqlite = url.starts_with("sqlite:");
    // SQLite has one writer; a single connection serialises kiln's short
    // transactions instead of failing them with "database is locked" when a
    // deferred transaction tries to upgrade to a write.
    let max_connections = if sqlite { 1 } else { max_connections.max(1) };
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(max_connections)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(8))
        // A PostgreSQL restart leaves every pooled connection dead. Each is
        // pinged before it is handed out, so the pool drops the dead ones at
        // once instead of failing one request with each; the ping costs a
        // round trip per transaction. A SQLite file has no server to lose.
        .test_before_acquire(!sqlite)
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .map_err(|e| DatabaseError::Connect {
            url: redact_password(&url),
            reason: e.to_string(),
        })?;
    if Backend::of(&db) == Backend::Sqlite {
        // WAL lets readers (the API) run beside the annealer's writes.
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .await
            .map_err(|e| DatabaseError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(db)
}

/// Applies pending migrations, refusing a schema written by a newer kiln.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DatabaseError> {
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let applied = Migrator::get_migration_models(db)
        .await
        .map_err(|e| DatabaseError::Migrate(e.to_string()))?;
    let unknown: Vec<String> = applied
        .into_iter()
        .map(|m| m.version)
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        return Err(DatabaseError::NewerSchema(unknown.join(", ")));
    }
    Migrator::up(db, None)
        .await
        .map_err(|e| DatabaseError::Migrate(e.to_string()))
}

fn normalise_url(url: &str) -> Result<String, DatabaseError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_string());
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.contains("mode=") || rest.contains(":memory:") {
            return Ok(url.to_string());
        }
        let sep = if rest.contains('?') { '&' } else { '?' };
        return Ok(format!("{url}{sep}mode=rwc"));
    }
    Err(DatabaseError::UnsupportedUrl(url.to_string()))
}

fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The clock every row's timestamps come from (UTC, per DESIGN section 1).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
