//! `/api/v2/nodes`: register, list, inspect, change and delete nodes.

use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::Deserialize;

use super::auth::{Admin, Caller};
use super::body::{self, Page};
use super::views::{sorted, CreatedNode, NodeView};
use super::ApiError;
use super::AppState;
use crate::db::nodes::{self, NewInterface, NewNode, NodeChange, NodeFilter};
use crate::db::{deployments, Key};
use crate::domain::node_token;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    alive: Option<bool>,
    available: Option<bool>,
    bootenv: Option<String>,
    deployment: Option<String>,
    name: Option<String>,
    /// Only nodes whose inventory reports at least this much memory (MiB).
    min_memory_mib: Option<u64>,
    /// Only nodes whose inventory reports at least this many disks.
    min_disks: Option<u32>,
    limit: Option<u64>,
    offset: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateNode {
    name: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    alive: bool,
    #[serde(default = "yes")]
    available: bool,
    #[serde(default = "sledgehammer")]
    bootenv: String,
    target_os: Option<String>,
    deployment: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    interfaces: Vec<CreateInterface>,
    /// Its BMC: enough on its own to enrol a machine not booted yet.
    bmc: Option<super::bmc::BmcInput>,
}

fn yes() -> bool {
    true
}

fn sledgehammer() -> String {
    "sledgehammer".into()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateInterface {
    mac: String,
    ip: Option<String>,
    hostname: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateNode {
    alive: Option<bool>,
    available: Option<bool>,
    bootenv: Option<String>,
    #[serde(default, with = "double_option")]
    target_os: Option<Option<String>>,
    /// Replaces the BMC (its password kept unless given); null removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<super::bmc::BmcInput>)]
    bmc: Option<Option<super::bmc::BmcInput>>,
}

/// Tells "absent" from "null" so `target_os: null` clears it.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Some(Option::deserialize(d)?))
    }
}

#[utoipa::path(
    get,
    path = "/api/v2/nodes",
    tag = "nodes",
    params(ListQuery),
    responses((status = 200, description = "A page of nodes with their interfaces", body = [NodeView]), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/nodes")]
async fn list(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::new(query.limit, query.offset)?;
    let deployment_id = match &query.deployment {
        Some(d) => {
            let found = deployments::get(&state.db, &Key::parse(d))
                .await
                .map(|m| m.id);
            Some(body::filter_id("deployment", d, found)?)
        }
        None => None,
    };
    let filter = NodeFilter {
        alive: query.alive,
        available: query.available,
        bootenv: query.bootenv.clone(),
        deployment_id,
        name_contains: query.name.clone(),
        min_memory_mib: query
            .min_memory_mib
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        min_disks: query
            .min_disks
            .map(|d| i32::try_from(d).unwrap_or(i32::MAX)),
        limit: page.limit,
        offset: page.offset,
    };
    let page: Vec<NodeView> = nodes::list(&state.db, &filter)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(
    post,
    path = "/api/v2/nodes",
    tag = "nodes",
    request_body = CreateNode,
    responses((status = 201, description = "The node and its one-time token", body = CreatedNode), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[post("/nodes")]
async fn create(
    _: Admin,
    state: web::Data<AppState>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: CreateNode = body::parse(&raw)?;
    let bmc = req
        .bmc
        .as_ref()
        .map(|b| b.prepare(state.secret_key.as_ref(), "bmc"))
        .transpose()?;
    let new = NewNode {
        name: req.name,
        admin: req.admin,
        alive: req.alive,
        available: req.available,
        bootenv: req.bootenv,
        target_os: req.target_os,
        deployment: req.deployment,
        description: req.description,
        interfaces: req
            .interfaces
            .into_iter()
            .map(|i| NewInterface {
                mac: i.mac,
                ip: i.ip,
                hostname: i.hostname,
            })
            .collect(),
        bmc,
    };
    let (view, token) = state.orchestrator.create_node(new).await?;
    let created = CreatedNode {
        node: view.into(),
        token,
    };
    Ok(HttpResponse::Created().json(sorted(&created)))
}

#[utoipa::path(
    get,
    path = "/api/v2/nodes/{key}",
    tag = "nodes",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 200, description = "The node", body = NodeView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/nodes/{key}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = nodes::get_view(&state.db, &Key::parse(&path)).await?;
    Ok(HttpResponse::Ok().json(NodeView::from(view)))
}

/// The admin may change any field; a node's own token only what
/// `domain::node_token` allows (bootenv to a local one, alive to true).
#[utoipa::path(
    put,
    path = "/api/v2/nodes/{key}",
    tag = "nodes",
    params(("key" = String, Path, description = "id or name")),
    request_body = UpdateNode,
    responses((status = 200, description = "The changed node (admin, or the node's own token for alive true / a local bootenv)", body = NodeView), (status = 401, description = "missing or wrong token"), (status = 403, description = "a node token may not make this change, named in error.field"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[put("/nodes/{key}")]
async fn update(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    let req: UpdateNode = body::parse(&raw)?;
    let bmc = match &req.bmc {
        Some(Some(b)) => Some(Some(b.prepare(state.secret_key.as_ref(), "bmc")?)),
        Some(None) => Some(None),
        None => None,
    };
    let change = NodeChange {
        alive: req.alive,
        available: req.available,
        bootenv: req.bootenv,
        target_os: req.target_os,
        bmc,
        keeps_alive_since: false,
    };
    if let Caller::Token(token) = &caller {
        let node = nodes::get(&state.db, &key)
            .await
            .map_err(|_| ApiError::Unauthorized)?;
        if !nodes::token_matches(&node, token) {
            return Err(ApiError::Unauthorized);
        }
        node_token::check_self_report(&state.db, &change).await?;
    }
    state.orchestrator.update_node(&key, change).await?;
    let view = nodes::get_view(&state.db, &key).await?;
    Ok(HttpResponse::Ok().json(NodeView::from(view)))
}

#[utoipa::path(
    delete,
    path = "/api/v2/nodes/{key}",
    tag = "nodes",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 204, description = "Deleted with its bindings and runs"), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[delete("/nodes/{key}")]
async fn remove(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.orchestrator.delete_node(&Key::parse(&path)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(show)
        .service(update)
        .service(remove);
}
