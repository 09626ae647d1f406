//! `/api/v2/runs`, `/api/v2/scheduler`, `/api/v2/anneal`: history, the live
//! queue with positions, and whether the cluster has settled.

use std::collections::HashMap;

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

use super::auth::Admin;
use super::body::{filter_id, Page};
use super::views::{sorted, AnnealView, RunDetail, RunView};
use super::ApiError;
use super::AppState;
use crate::actors::scheduler::SchedulerStatus;
use crate::db::runs::{self, RunFilter};
use crate::db::{noderoles, nodes, Key};
use crate::domain::RunState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    node: Option<String>,
    noderole: Option<i64>,
    state: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

fn run_state(raw: &str) -> Result<RunState, ApiError> {
    RunState::parse(raw).ok_or_else(|| ApiError::Unprocessable {
        message: format!("`{raw}` is not a run state"),
        field: Some("state".into()),
    })
}

/// Runs newest first; queued ones carry their place in the scheduler's line
/// (`position`, null while they wait behind their node's current run).
#[utoipa::path(
    get,
    path = "/api/v2/runs",
    tag = "runs",
    params(ListQuery),
    responses((status = 200, description = "Runs newest first, queued ones with their position", body = [RunView]), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/runs")]
async fn list(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::new(query.limit, query.offset)?;
    let node_id = match &query.node {
        Some(n) => {
            let found = nodes::get(&state.db, &Key::parse(n)).await.map(|m| m.id);
            Some(filter_id("node", n, found)?)
        }
        None => None,
    };
    let filter = RunFilter {
        node_id,
        noderole_id: query.noderole,
        state: query.state.as_deref().map(run_state).transpose()?,
        limit: page.limit,
        offset: page.offset,
    };
    let rows = runs::list(&state.db, &filter).await?;
    let status = state.orchestrator.scheduler_status().await?;
    let positions: HashMap<i64, usize> = status
        .waiting
        .iter()
        .map(|w| (w.run_id, w.position))
        .collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.noderole_id).collect();
    let names: HashMap<i64, (String, String)> = noderoles::refs(&state.db, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id, (r.node, r.role)))
        .collect();
    let body: Vec<RunView> = rows
        .into_iter()
        .map(|r| {
            let position = positions.get(&r.id).copied();
            let names = names.get(&r.noderole_id).cloned();
            RunView::new(r, position, names)
        })
        .collect();
    Ok(HttpResponse::Ok().json(sorted(&body)))
}

#[utoipa::path(
    get,
    path = "/api/v2/runs/{id}",
    tag = "runs",
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "The run and its noderole's runlog", body = RunDetail), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/runs/{id}")]
async fn show(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .map_err(|_| ApiError::NotFound(format!("run `{path}` not found")))?;
    let run = runs::get(&state.db, id).await?;
    let nr = noderoles::get(&state.db, run.noderole_id).await?;
    Ok(HttpResponse::Ok().json(sorted(&RunDetail::new(run, nr.runlog))))
}

#[utoipa::path(
    get,
    path = "/api/v2/scheduler",
    tag = "runs",
    responses((status = 200, description = "Slots in use, capacity and waiting runs", body = SchedulerStatus), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/scheduler")]
async fn scheduler(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.orchestrator.scheduler_status().await?))
}

/// 202 while anything is todo or transition or a run is queued or running
/// (work remains), 200 when settled; counts by state either way, so scripts
/// can poll it.
#[utoipa::path(
    get,
    path = "/api/v2/anneal",
    tag = "runs",
    responses((status = 200, description = "Settled: nothing is todo or in transition and no run is queued or running; counts by state", body = AnnealView), (status = 202, description = "Work remains; counts by state", body = AnnealView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "state conflict or duplicate"), (status = 422, description = "invalid field, named in error.field"))
)]
#[get("/anneal")]
async fn anneal(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = state.orchestrator.anneal_status().await?;
    let body = sorted(&AnnealView::new(&status));
    Ok(if status.settled {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Accepted().json(body)
    })
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(scheduler)
        .service(anneal);
}
