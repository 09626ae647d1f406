//! `/api/v2/deployments`: create, inspect, commit and re-propose.

use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;

use super::auth::Admin;
use super::body;
use super::views::DeploymentView;
use super::ApiError;
use super::AppState;
use crate::db::{deployments, Key};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateDeployment {
    name: String,
    parent: Option<String>,
    #[serde(default)]
    description: String,
}

#[utoipa::path(
    get,
    path = "/api/v2/deployments",
    tag = "deployments",
    responses((status = 200, description = "Every deployment", body = [DeploymentView]), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/deployments")]
async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all: Vec<DeploymentView> = deployments::list_observed(&state.db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    post,
    path = "/api/v2/deployments",
    tag = "deployments",
    request_body = CreateDeployment,
    responses((status = 201, description = "The new, proposed deployment", body = DeploymentView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[post("/deployments")]
async fn create(
    _: Admin,
    state: web::Data<AppState>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: CreateDeployment = body::parse(&raw)?;
    let row = deployments::create(
        &state.db,
        &req.name,
        req.parent.as_deref(),
        &req.description,
    )
    .await?;
    Ok(HttpResponse::Created().json(DeploymentView::from(row)))
}

#[utoipa::path(
    get,
    path = "/api/v2/deployments/{key}",
    tag = "deployments",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 200, description = "The deployment", body = DeploymentView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/deployments/{key}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = deployments::get_observed(&state.db, &Key::parse(&path)).await?;
    Ok(HttpResponse::Ok().json(DeploymentView::from(row)))
}

#[utoipa::path(
    put,
    path = "/api/v2/deployments/{key}/commit",
    tag = "deployments",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 200, description = "Committed: its proposed noderoles go to todo", body = DeploymentView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/deployments/{key}/commit")]
async fn commit(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    state.orchestrator.commit_deployment(&key).await?;
    let row = deployments::get_observed(&state.db, &key).await?;
    Ok(HttpResponse::Ok().json(DeploymentView::from(row)))
}

#[utoipa::path(
    put,
    path = "/api/v2/deployments/{key}/propose",
    tag = "deployments",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 200, description = "Re-proposed: nothing more runs until committed", body = DeploymentView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/deployments/{key}/propose")]
async fn propose(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    state.orchestrator.propose_deployment(&key).await?;
    let row = deployments::get_observed(&state.db, &key).await?;
    Ok(HttpResponse::Ok().json(DeploymentView::from(row)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(show)
        .service(commit)
        .service(propose);
}
