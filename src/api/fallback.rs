//! What answers when no handler does: a JSON 404 for an unknown path, a JSON
//! 405 (with `Allow`) for a known path asked with another method, and JSON in
//! place of the text actix-web writes for errors it raises itself (a body
//! over the size limit), so every error a client sees has one shape.

use std::sync::OnceLock;

use actix_web::dev::{ResourceDef, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::error::{from_plain, method_not_allowed};
use super::ApiError;

/// Every documented path with the methods it answers, from the OpenAPI
/// spec, which is generated from the handlers.
fn known_paths() -> &'static [(ResourceDef, Vec<Method>)] {
    static PATHS: OnceLock<Vec<(ResourceDef, Vec<Method>)>> = OnceLock::new();
    PATHS.get_or_init(|| {
        super::openapi::spec()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                // `{tail}` stands for the rest of the path, slashes included.
                let pattern = template.replace("{tail}", "{tail:.*}");
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                ];
                let methods = methods
                    .into_iter()
                    .filter_map(|(m, served)| served.then_some(m))
                    .collect();
                (ResourceDef::new(pattern), methods)
            })
            .collect()
    })
}

/// The default service: 405 when the path is known, else 404.
pub async fn unmatched(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    match known_paths().iter().find(|(def, _)| def.is_match(path)) {
        Some((_, methods)) if !methods.contains(req.method()) => method_not_allowed(methods),
        _ => ApiError::NotFound(format!("no route {path}")).error_response(),
    }
}

/// Rewrites an error response that is not JSON into the JSON error shape.
pub fn json_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new()
        .default_handler_client(as_json)
        .default_handler_server(as_json)
}

fn as_json<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = res.response().error().map(|e| e.to_string());
    let (req, _) = res.into_parts();
    let json = from_plain(status, message).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
        req, json,
    )))
}
