//! `/api/v2/roles` and `/api/v2/bootenvs`: what can be bound and booted.

use actix_web::{get, web, HttpResponse};

use super::auth::Admin;
use super::views::{BootenvView, RoleView};
use super::ApiError;
use super::AppState;
use crate::db::{bootenvs, roles, Key};

#[utoipa::path(
    get,
    path = "/api/v2/roles",
    tag = "roles",
    responses((status = 200, description = "Every role with its requirements", body = [RoleView]), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/roles")]
async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all: Vec<RoleView> = roles::list(&state.db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    get,
    path = "/api/v2/roles/{key}",
    tag = "roles",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 200, description = "The role", body = RoleView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/roles/{key}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let role = roles::get(&state.db, &Key::parse(&path)).await?;
    let requires = roles::requirements(&state.db, role.id).await?;
    Ok(HttpResponse::Ok().json(RoleView::from(roles::RoleView { role, requires })))
}

#[utoipa::path(
    get,
    path = "/api/v2/bootenvs",
    tag = "roles",
    responses((status = 200, description = "Every bootenv", body = [BootenvView]), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/bootenvs")]
async fn list_bootenvs(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all: Vec<BootenvView> = bootenvs::list(&state.db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(show).service(list_bootenvs);
}
