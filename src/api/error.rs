//! The one place errors become HTTP: `{"error":{"code","message","field"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::RepoError;
use crate::domain::DomainError;

/// Every failure a handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    #[error("{message}")]
    Unprocessable {
        message: String,
        field: Option<String>,
    },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Authenticated, but not allowed; `field` names what was refused.
    #[error("{message}")]
    Forbidden {
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The node's BMC failed or refused: its own message.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unprocessable { .. } => "invalid",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::BadGateway(_) => "bmc_failed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. }
            | ApiError::Unprocessable { field, .. }
            | ApiError::Forbidden { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        HttpResponse::build(self.status_code()).json(body(
            self.code(),
            &self.to_string(),
            self.field(),
        ))
    }
}

/// The one error shape, `{"error":{"code","message","field"}}`.
fn body(code: &str, message: &str, field: Option<&str>) -> serde_json::Value {
    json!({ "error": { "code": code, "message": message, "field": field } })
}

/// 405 for a known path asked with a method it does not serve, naming the
/// ones it does in `Allow`.
pub fn method_not_allowed(allowed: &[actix_web::http::Method]) -> HttpResponse {
    let allow = allowed
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!("method not allowed; this path answers {allow}");
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow))
        .json(body("method_not_allowed", &message, None))
}

/// The JSON error for a response actix-web made itself as text (a body
/// over the size limit, a payload it could not read): the same status,
/// with the error's own words as the message.
pub fn from_plain(status: StatusCode, message: Option<String>) -> HttpResponse {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message =
        message.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
    HttpResponse::build(status).json(body(code, &message, None))
}

impl From<RepoError> for ApiError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound { .. } => ApiError::NotFound(err.to_string()),
            RepoError::Duplicate { .. } => ApiError::Conflict(err.to_string()),
            RepoError::Conflict(message) => ApiError::Conflict(message),
            RepoError::ForeignKey { .. } => ApiError::Conflict(err.to_string()),
            RepoError::Invalid { ref field, .. } => ApiError::Unprocessable {
                field: Some(field.clone()),
                message: err.to_string(),
            },
            RepoError::Database(_) if err.is_unavailable() => {
                ApiError::Unavailable("the database is unavailable; try again shortly".into())
            }
            RepoError::Database(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Repo(repo) => repo.into(),
            DomainError::Cycle { .. } => ApiError::Conflict(err.to_string()),
            DomainError::StateConflict(message) => ApiError::Conflict(message),
            DomainError::Invalid { ref field, .. } => ApiError::Unprocessable {
                field: Some(field.clone()),
                message: err.to_string(),
            },
            DomainError::Forbidden { field, reason } => ApiError::Forbidden {
                message: reason,
                field: Some(field),
            },
        }
    }
}

impl From<crate::provisioner::power::PowerError> for ApiError {
    fn from(err: crate::provisioner::power::PowerError) -> Self {
        use crate::bmc::BmcError;
        use crate::provisioner::power::PowerError;
        match err {
            PowerError::Bmc(BmcError::NotConfigured { .. }) => ApiError::Conflict(err.to_string()),
            PowerError::Bmc(e) => ApiError::BadGateway(e.to_string()),
            PowerError::Domain(e) => e.into(),
            PowerError::Seal(e) => ApiError::Internal(e.to_string()),
        }
    }
}
