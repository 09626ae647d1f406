//! The HTTP surface: `/health` and the admin API under `/api/v2`.
//!
//! Architecture invariant: handlers translate HTTP to calls on `db` and the
//! actors and back; they hold no state of their own.

mod error;
mod health;

use actix_web::web;

pub use error::ApiError;

/// Mounts every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(health::health);
}
