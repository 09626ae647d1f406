//! `/api/v2/roles` and `/api/v2/bootenvs`: what can be bound and booted.

use actix_web::{get, web, HttpResponse};

use super::auth::Admin;
use super::ApiError;
use crate::app::AppState;
use crate::db::{bootenvs, roles, Key};

#[get("/roles")]
async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(roles::list(&state.db).await?))
}

#[get("/roles/{key}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let role = roles::get(&state.db, &Key::parse(&path)).await?;
    let requires = roles::requirements(&state.db, role.id).await?;
    Ok(HttpResponse::Ok().json(roles::RoleView { role, requires }))
}

#[get("/bootenvs")]
async fn list_bootenvs(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(bootenvs::list(&state.db).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(show).service(list_bootenvs);
}
