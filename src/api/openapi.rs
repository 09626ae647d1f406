//! `GET /api/v2/openapi.json`: the API described from the handlers
//! themselves, so the spec cannot drift from the code. Each handler's
//! annotation gives its answers; [`Contract`] adds what every operation
//! shares (the bearer scheme on admin routes, the error body, the errors
//! any route can give) so that a contract tester can check every answer.

use actix_web::{get, HttpResponse};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::views::{ErrorBody, ErrorDetail};
use super::{
    bmc, boot, deployments, events, health, inventory, leases, metrics, noderoles, nodes, roles,
    runs,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiln admin API",
        description = "Bare-metal provisioning: nodes, roles, deployments, noderoles and runs."
    ),
    paths(
        health::health,
        metrics::metrics,
        boot::script,
        boot::answer,
        boot::files,
        nodes::list,
        nodes::create,
        nodes::show,
        nodes::update,
        nodes::remove,
        bmc::status,
        bmc::act,
        inventory::report,
        leases::list,
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
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Contract)
)]
struct ApiDoc;

/// The name of the admin token's security scheme.
const BEARER: &str = "bearer";

/// What every operation shares, added after the annotations.
struct Contract;

impl Modify for Contract {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            let admin = path.starts_with("/api/v2/") && path != "/api/v2/openapi.json";
            for (method, op) in operations(item) {
                complete(path, method, op, admin);
            }
        }
    }
}

/// The operations of a path, with their method's name.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("head", item.head.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

fn complete(path: &str, method: &str, op: &mut Operation, admin: bool) {
    // Handler names repeat across files (`list`, `show`, `commit`): the
    // method and path make an id no other operation has.
    op.operation_id = Some(operation_id(method, path));
    let mut shared = vec![];
    if admin {
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        shared.push(("401", "missing or wrong token"));
    }
    if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some() {
        shared.push((
            "400",
            "malformed JSON, or a path or query parameter that does not parse",
        ));
    }
    if op.request_body.is_some() {
        shared.push(("413", "the body is larger than the limit"));
    }
    if path != "/api/v2/openapi.json" && !path.starts_with("/boot/files/") {
        shared.push(("503", "the database does not answer"));
    }
    for (status, description) in shared {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response {
            if status.starts_with('4') || status.starts_with('5') {
                with_error_body(response);
            }
        }
    }
}

/// `get /api/v2/nodes/{key}` → `get_nodes_key`.
fn operation_id(method: &str, path: &str) -> String {
    let words = path
        .trim_start_matches("/api/v2")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty());
    std::iter::once(method)
        .chain(words)
        .collect::<Vec<_>>()
        .join("_")
}

/// An error answer's body is the one JSON error shape.
fn with_error_body(response: &mut Response) {
    response.content.clear();
    response.content.insert(
        "application/json".into(),
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
}

/// The spec as JSON.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(
    get,
    path = "/api/v2/openapi.json",
    tag = "spec",
    responses((status = 200, description = "This document", body = Object))
)]
#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(spec())
}
