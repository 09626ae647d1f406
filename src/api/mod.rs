//! The HTTP surface: `/health`, `/metrics` and the admin API under `/api/v2`.
//!
//! Architecture invariant: handlers translate HTTP to calls on `db` (reads)
//! and the orchestrator (changes) and back; they hold no state of their own,
//! and every error becomes JSON in `error.rs`.

mod auth;
pub mod bmc;
mod body;
mod boot;
mod deployments;
mod error;
mod events;
mod fallback;
mod health;
mod inventory;
mod leases;
mod metrics;
mod noderoles;
mod nodes;
mod openapi;
mod roles;
mod runs;
mod state;
mod views;

use actix_web::web;

pub use error::ApiError;
pub use fallback::json_errors;
pub use state::AppState;

/// The largest request body kiln reads (larger ones get a JSON 413).
pub const BODY_LIMIT: usize = 1 << 20;

/// Mounts every route, with JSON errors from the extractors and for paths
/// and methods no handler serves.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| body::query_error(e).into()))
        .app_data(web::PathConfig::default().error_handler(|e, _| body::path_error(e).into()))
        .app_data(
            web::JsonConfig::default()
                .limit(BODY_LIMIT)
                .error_handler(|e, _| body::json_error(e)),
        )
        .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
        .default_service(web::to(fallback::unmatched))
        .service(health::health)
        .configure(crate::ui::routes)
        .service(metrics::metrics)
        .configure(boot::routes)
        .service(
            web::scope("/api/v2")
                .configure(nodes::routes)
                .configure(bmc::routes)
                .configure(inventory::routes)
                .configure(roles::routes)
                .configure(deployments::routes)
                .configure(noderoles::routes)
                .configure(runs::routes)
                .configure(leases::routes)
                .service(events::events)
                .service(openapi::openapi_json)
                .default_service(web::to(fallback::unmatched)),
        );
}
