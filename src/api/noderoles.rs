//! `/api/v2/noderoles`: bind roles to nodes, edit, commit, retry.

use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;

use super::auth::Admin;
use super::body::{self, Page};
use super::views::{sorted, NoderoleDetail, NoderoleRefView};
use super::ApiError;
use super::AppState;
use crate::db::noderoles::{self, NoderoleFilter};
use crate::db::{deployments, nodes, roles, Key};
use crate::domain::binding::BindRequest;
use crate::domain::NoderoleState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    node: Option<String>,
    role: Option<String>,
    deployment: Option<String>,
    state: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Bind {
    node: String,
    role: String,
    deployment: String,
    data: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Edit {
    data: serde_json::Value,
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("noderole `{raw}` not found")))
}

#[utoipa::path(
    get,
    path = "/api/v2/noderoles",
    tag = "noderoles",
    params(ListQuery),
    responses((status = 200, description = "A page of noderoles with node, role and deployment names", body = [NoderoleRefView]), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/noderoles")]
async fn list(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::new(query.limit, query.offset)?;
    let mut filter = NoderoleFilter {
        limit: page.limit,
        offset: page.offset,
        ..Default::default()
    };
    if let Some(n) = &query.node {
        let found = nodes::get(&state.db, &Key::parse(n)).await.map(|m| m.id);
        filter.node_id = Some(body::filter_id("node", n, found)?);
    }
    if let Some(r) = &query.role {
        let found = roles::get(&state.db, &Key::parse(r)).await.map(|m| m.id);
        filter.role_id = Some(body::filter_id("role", r, found)?);
    }
    if let Some(d) = &query.deployment {
        let found = deployments::get(&state.db, &Key::parse(d))
            .await
            .map(|m| m.id);
        filter.deployment_id = Some(body::filter_id("deployment", d, found)?);
    }
    if let Some(s) = &query.state {
        filter.state = Some(
            NoderoleState::parse(s).ok_or_else(|| ApiError::Unprocessable {
                message: format!("`{s}` is not a noderole state"),
                field: Some("state".into()),
            })?,
        );
    }
    let page: Vec<NoderoleRefView> = noderoles::list_refs(&state.db, &filter)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(page))
}

/// The noderole as [`NoderoleDetail`], keys sorted.
async fn detail(state: &AppState, id: i64) -> Result<serde_json::Value, ApiError> {
    let row = noderoles::get(&state.db, id).await?;
    let names = noderoles::refs(&state.db, &[id]).await?.into_iter().next();
    let parents = noderoles::parents(&state.db, id).await?;
    Ok(sorted(&NoderoleDetail::new(row, names, parents)))
}

#[utoipa::path(
    post,
    path = "/api/v2/noderoles",
    tag = "noderoles",
    request_body = Bind,
    responses((status = 201, description = "The proposed noderole (requirements bound too)", body = NoderoleDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[post("/noderoles")]
async fn bind(
    _: Admin,
    state: web::Data<AppState>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: Bind = body::parse(&raw)?;
    let row = state
        .orchestrator
        .bind(BindRequest {
            node: Key::parse(&req.node),
            role: Key::parse(&req.role),
            deployment: Key::parse(&req.deployment),
            data: req.data,
        })
        .await?;
    Ok(HttpResponse::Created().json(detail(&state, row.id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v2/noderoles/{id}",
    tag = "noderoles",
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "The noderole with its data, wall and runlog", body = NoderoleDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/noderoles/{id}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(detail(&state, parse_id(&path)?).await?))
}

/// New proposed data: the noderole goes back to proposed until committed.
#[utoipa::path(
    put,
    path = "/api/v2/noderoles/{id}",
    tag = "noderoles",
    params(("id" = i64, Path, description = "numeric id")),
    request_body = Edit,
    responses((status = 200, description = "New proposed data; proposed until committed", body = NoderoleDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/noderoles/{id}")]
async fn edit(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let req: Edit = body::parse(&raw)?;
    state
        .orchestrator
        .propose_noderole(id, Some(req.data))
        .await?;
    Ok(HttpResponse::Ok().json(detail(&state, id).await?))
}

#[utoipa::path(
    put,
    path = "/api/v2/noderoles/{id}/commit",
    tag = "noderoles",
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "Committed", body = NoderoleDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/noderoles/{id}/commit")]
async fn commit(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state.orchestrator.commit_noderole(id).await?;
    Ok(HttpResponse::Ok().json(detail(&state, id).await?))
}

#[utoipa::path(
    put,
    path = "/api/v2/noderoles/{id}/propose",
    tag = "noderoles",
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "Proposed again", body = NoderoleDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/noderoles/{id}/propose")]
async fn propose(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state.orchestrator.propose_noderole(id, None).await?;
    Ok(HttpResponse::Ok().json(detail(&state, id).await?))
}

#[utoipa::path(
    put,
    path = "/api/v2/noderoles/{id}/retry",
    tag = "noderoles",
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "Back to todo (409 unless in error)", body = NoderoleDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/noderoles/{id}/retry")]
async fn retry(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state.orchestrator.retry_noderole(id).await?;
    Ok(HttpResponse::Ok().json(detail(&state, id).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(bind)
        .service(show)
        .service(edit)
        .service(commit)
        .service(propose)
        .service(retry);
}
