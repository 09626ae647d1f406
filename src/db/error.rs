//! Repository errors: what went wrong, in terms the API can map to a status.

use sea_orm::{DbErr, RuntimeErr, SqlErr, TransactionError};

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

    /// Whether the database could not be reached or is passing through a
    /// fault that goes away by itself (stopped, restarting, a connection it
    /// dropped, a deadlock it broke, a busy SQLite file): the request may be
    /// tried again as it is, so the API answers 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RepoError::Database(e) => is_passing_fault(e),
            _ => false,
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

/// See [`RepoError::is_unavailable`].
fn is_passing_fault(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            is_passing_driver_fault(e)
        }
        _ => false,
    }
}

fn is_passing_driver_fault(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::BeginFailed => true,
        Error::Database(e) => e.code().is_some_and(|code| is_passing_code(&code)),
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs for a lost connection (class 08), a server
/// shutting down or starting (57P01-57P03), too many connections (53300),
/// a serialization failure or deadlock (40001, 40P01); SQLite's busy and
/// locked (5, 6, with their extended codes).
fn is_passing_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
        || code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_codes() {
        for code in ["08006", "57P01", "57P03", "53300", "40P01", "5", "517", "6"] {
            assert!(is_passing_code(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "19", "2067", "787"] {
            assert!(!is_passing_code(code), "{code}");
        }
    }

    #[test]
    fn a_timed_out_pool_is_unavailable_a_missing_row_is_not() {
        let timed_out = RepoError::Database(DbErr::ConnectionAcquire(
            sea_orm::error::ConnAcquireErr::Timeout,
        ));
        assert!(timed_out.is_unavailable());
        assert!(!RepoError::Database(DbErr::RecordNotFound("x".into())).is_unavailable());
        assert!(!RepoError::not_found("node", "n1").is_unavailable());
    }
}
