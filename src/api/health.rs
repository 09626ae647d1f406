//! Liveness: answers whether kiln and its database respond.

use actix_web::{get, web, HttpResponse};

use super::views::{sorted, HealthView};
use super::ApiError;
use super::AppState;

/// `GET /health`: 200 with the backend name when the database answers,
/// 503 `unavailable` while it does not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "kiln and its database answer", body = HealthView), (status = 503, description = "the database does not answer"))
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "health check: the database does not answer");
        ApiError::Unavailable("the database does not answer".into())
    })?;
    Ok(HttpResponse::Ok().json(sorted(&HealthView::ok(state.backend))))
}
