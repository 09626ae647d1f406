//! `/api/v2/deployments`: create, inspect, commit and re-propose.

use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;

use super::auth::Admin;
use super::body;
use super::ApiError;
use crate::app::AppState;
use crate::db::{deployments, Key};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDeployment {
    name: String,
    parent: Option<String>,
    #[serde(default)]
    description: String,
}

#[get("/deployments")]
async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(deployments::list(&state.db).await?))
}

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
    Ok(HttpResponse::Created().json(row))
}

#[get("/deployments/{key}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(deployments::get(&state.db, &Key::parse(&path)).await?))
}

#[put("/deployments/{key}/commit")]
async fn commit(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    state.orchestrator.commit_deployment(&key).await?;
    Ok(HttpResponse::Ok().json(deployments::get(&state.db, &key).await?))
}

#[put("/deployments/{key}/propose")]
async fn propose(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    state.orchestrator.propose_deployment(&key).await?;
    Ok(HttpResponse::Ok().json(deployments::get(&state.db, &key).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(show)
        .service(commit)
        .service(propose);
}
