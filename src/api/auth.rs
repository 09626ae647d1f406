//! Who is calling: the admin (bearer `auth.admin_token`), or a node with its
//! own token, which may only report its own `alive` and `bootenv`.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};

use super::ApiError;
use super::AppState;

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .or_else(|| token_query(req))
}

/// `?token=` for clients that cannot set headers (EventSource).
fn token_query(req: &HttpRequest) -> Option<String> {
    req.query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_string)
}

fn is_admin(req: &HttpRequest) -> bool {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return false;
    };
    let expected = &state.settings.auth.admin_token;
    // No token configured: kiln listens on loopback only and is open there.
    expected.is_empty() || bearer(req).as_deref() == Some(expected.as_str())
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
