//! Repository errors: what went wrong, in terms the API can map to a status.

use sea_orm::{DbErr, SqlErr, TransactionError};

/// A failed repository call. Distinct variants for the failures callers
/// handle differently; the message never repeats the source.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{entity} `{key}` already exists")]
    Duplicate { entity: &'static str, key: String },
    #[error("{entity} `{key}` not found")]
    NotFound { entity: &'static str, key: String },
    #[error("{entity} refers to a row that does not exist or is still in use")]
    ForeignKey {
        entity: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("database failure")]
    Database(#[source] DbErr),
}

pub type RepoResult<T> = Result<T, RepoError>;

impl RepoError {
    /// Classifies a driver error for a write to `entity` keyed by `key`.
    pub fn from_write(err: DbErr, entity: &'static str, key: impl Into<String>) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => RepoError::Duplicate {
                entity,
                key: key.into(),
            },
            Some(SqlErr::ForeignKeyConstraintViolation(detail)) => {
                RepoError::ForeignKey { entity, detail }
            }
            _ if is_sqlite_restrict(&err) => RepoError::ForeignKey {
                entity,
                detail: err.to_string(),
            },
            _ => RepoError::Database(err),
        }
    }

    /// The message, with the driver's own text for a database failure:
    /// for runlogs, logs and start-up errors, where the source has no other
    /// place to go.
    pub fn detail(&self) -> String {
        match self {
            RepoError::Database(e) => e.to_string(),
            other => other.to_string(),
        }
    }

    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        RepoError::NotFound {
            entity,
            key: key.to_string(),
        }
    }
}

impl From<DbErr> for RepoError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => RepoError::Duplicate {
                entity: "row",
                key: detail,
            },
            Some(SqlErr::ForeignKeyConstraintViolation(detail)) => RepoError::ForeignKey {
                entity: "row",
                detail,
            },
            _ if is_sqlite_restrict(&err) => RepoError::ForeignKey {
                entity: "row",
                detail: err.to_string(),
            },
            _ => RepoError::Database(err),
        }
    }
}

/// SQLite reports `ON DELETE RESTRICT` with an extended code sea-orm does
/// not classify; its message is stable.
fn is_sqlite_restrict(err: &DbErr) -> bool {
    err.to_string().contains("FOREIGN KEY constraint failed")
}

impl From<TransactionError<RepoError>> for RepoError {
    fn from(err: TransactionError<RepoError>) -> Self {
        match err {
            TransactionError::Connection(e) => e.into(),
            TransactionError::Transaction(e) => e,
        }
    }
}
