//! `GET /api/v2/openapi.json`: the API described from the handlers
//! themselves, so the spec cannot drift from the code.

use actix_web::{get, HttpResponse};
use utoipa::OpenApi;

use super::{deployments, events, noderoles, nodes, roles, runs};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiln admin API",
        description = "Bare-metal provisioning: nodes, roles, deployments, noderoles and runs."
    ),
    paths(
        nodes::list,
        nodes::create,
        nodes::show,
        nodes::update,
        nodes::remove,
        roles::list,
        roles::show,
        roles::list_bootenvs,
        deployments::list,
        deployments::create,
        deployments::show,
        deployments::commit,
        deployments::propose,
        noderoles::list,
        noderoles::bind,
        noderoles::show,
        noderoles::edit,
        noderoles::commit,
        noderoles::propose,
        noderoles::retry,
        runs::list,
        runs::show,
        runs::scheduler,
        runs::anneal,
        events::events,
    )
)]
struct ApiDoc;

/// The spec as JSON.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(spec())
}
