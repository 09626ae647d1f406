//! Who is calling: the admin (bearer `auth.admin_token`), or a node with its
//! own token, which may only report what `domain::node_token` allows.
//!
//! Tokens travel in the `Authorization` header. Only the event stream also
//! takes the admin token from `?token=`, for clients such as EventSource
//! that cannot set headers; anywhere else a URL would carry it into access
//! logs and browser history.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};

use super::ApiError;
use super::AppState;

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// `?token=` of the query string, if any.
fn token_query(req: &HttpRequest) -> Option<String> {
    req.query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_string)
}

/// Whether `presented` is the configured admin token (or none is set:
/// then kiln listens on loopback only and is open there).
fn is_admin_token(req: &HttpRequest, presented: Option<&str>) -> bool {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return false;
    };
    let expected = &state.settings.auth.admin_token;
    expected.is_empty() || presented.is_some_and(|p| same_secret(p, expected))
}

/// Compares in time that does not depend on where the two differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

fn is_admin(req: &HttpRequest) -> bool {
    is_admin_token(req, bearer(req).as_deref())
}

/// Proof the caller is the admin; a handler taking it refuses everyone else.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(if is_admin(req) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}

/// The admin on the event stream: the header, or `?token=`.
pub struct StreamAdmin;

impl FromRequest for StreamAdmin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            if is_admin(req) || is_admin_token(req, token_query(req).as_deref()) {
                Ok(StreamAdmin)
            } else {
                Err(ApiError::Unauthorized)
            },
        )
    }
}

/// The admin, or someone presenting a token a handler must check itself.
pub enum Caller {
    Admin,
    Token(String),
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(if is_admin(req) {
            Ok(Caller::Admin)
        } else {
            bearer(req).map(Caller::Token).ok_or(ApiError::Unauthorized)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcdefgh", "abcdefgh"));
        assert!(!same_secret("abcdefgh", "abcdefgi"));
        assert!(!same_secret("abcdefg", "abcdefgh"));
        assert!(!same_secret("", "x"));
    }
}
