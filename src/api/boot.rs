//! `/boot/...`: what machines fetch while they network-boot, without an
//! admin token: their iPXE script, their installer's answer file, and
//! kernels and initrds (streamed, with HEAD and Range).
//!
//! Rendering a known node's script issues it a fresh node token (only its
//! hash is stored), which the installer and the booted node use to call
//! back; the previous token stops working.

use actix_web::{get, route, web, HttpRequest, HttpResponse};
use entity::node;

use super::ApiError;
use super::AppState;
use crate::db::{bootenvs, nodes, Key};
use crate::domain::BootenvKind;
use crate::provisioner::boot::{ipxe_script, variables};
use crate::provisioner::discovery;
use crate::provisioner::template::render;

fn plain(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(body)
}

/// The MAC in a boot path, normalised, or a 400 naming it. iPXE
/// percent-encodes the colons (`52%3A54%3A...`).
fn parse_mac(raw: &str) -> Result<String, ApiError> {
    let raw = raw.replace("%3A", ":").replace("%3a", ":");
    nodes::normalise_mac(&raw).map_err(|reason| ApiError::BadRequest {
        message: reason,
        field: Some("mac".into()),
    })
}

fn render_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable {
        message: format!("bootenv template: {e}"),
        field: Some("append".into()),
    }
}

#[utoipa::path(
    get,
    path = "/boot/{mac}.ipxe",
    tag = "boot",
    params(("mac" = String, Path, description = "the booting interface's MAC")),
    responses((status = 200, description = "The iPXE script for the node's bootenv (discovery for an unknown MAC)", body = String, content_type = "text/plain"), (status = 400, description = "not a MAC, named in error.field"), (status = 422, description = "the bootenv's template does not render"), (status = 503, description = "the database does not answer"))
)]
#[get("/boot/{mac}.ipxe")]
async fn script(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mac = parse_mac(&path)?;
    let urls = &state.boot_urls;
    let Some(node) = find_or_await(&state, &mac).await? else {
        state.sightings.boot_script(&mac, "sledgehammer");
        let discovery = bootenvs::get(&state.db, "sledgehammer").await?;
        let vars = variables(urls, None, None, &mac, None);
        return Ok(plain(ipxe_script(&discovery, &vars).map_err(render_error)?));
    };
    let bootenv = bootenvs::get(&state.db, &node.bootenv).await?;
    state.sightings.boot_script(&mac, &bootenv.name);
    let token = if bootenv.kind == BootenvKind::Local {
        None
    } else {
        Some(nodes::rotate_token(&state.db, node.id).await?)
    };
    let view = nodes::get_view(&state.db, &Key::Id(node.id)).await?;
    let ip = view
        .interfaces
        .iter()
        .find(|i| i.mac == mac)
        .and_then(|i| i.ip.clone());
    let vars = variables(urls, Some(&node), token.as_deref(), &mac, ip.as_deref());
    Ok(plain(ipxe_script(&bootenv, &vars).map_err(render_error)?))
}

/// The node owning `mac`; a machine kiln's DHCP server just leased an
/// address to is waited for, so its discovery script carries a token.
async fn find_or_await(state: &AppState, mac: &str) -> Result<Option<node::Model>, ApiError> {
    match &state.dhcp_table {
        Some(table) => Ok(discovery::await_registration(&state.db, table, mac).await?),
        None => Ok(nodes::find_by_mac(&state.db, mac).await?),
    }
}

#[utoipa::path(
    get,
    path = "/boot/answers/{mac}",
    tag = "boot",
    params(("mac" = String, Path, description = "the installing interface's MAC")),
    responses((status = 200, description = "The installer's answer file, rendered from the node's bootenv", body = String, content_type = "text/plain"), (status = 400, description = "not a MAC, named in error.field"), (status = 404, description = "no node has this MAC"), (status = 409, description = "the node's bootenv has no answer file to give"), (status = 422, description = "the bootenv's template does not render"), (status = 503, description = "the database does not answer"))
)]
#[get("/boot/answers/{mac}")]
async fn answer(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mac = parse_mac(&path)?;
    let node = nodes::find_by_mac(&state.db, &mac)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no node has MAC {mac}")))?;
    let bootenv = bootenvs::get(&state.db, &node.bootenv).await?;
    let token = nodes::rotate_token(&state.db, node.id).await?;
    let vars = variables(&state.boot_urls, Some(&node), Some(&token), &mac, None);
    Ok(plain(
        render(&bootenv.template, &vars).map_err(render_error)?,
    ))
}

/// Kernels and initrds from `provisioner.files_dir`; actix-files answers
/// HEAD and Range and refuses paths that leave the directory.
#[utoipa::path(
    method(get, head),
    path = "/boot/files/{tail}",
    tag = "boot",
    params(("tail" = String, Path, description = "a path under provisioner.files_dir")),
    responses((status = 200, description = "The file", body = Vec<u8>, content_type = "application/octet-stream"), (status = 206, description = "The range asked for", body = Vec<u8>, content_type = "application/octet-stream"), (status = 404, description = "no such file"), (status = 416, description = "the range lies outside the file"))
)]
#[route("/boot/files/{tail:.*}", method = "GET", method = "HEAD")]
async fn files(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tail = path.into_inner();
    if tail.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(ApiError::NotFound(format!("no file {tail}")));
    }
    let full = state.settings.provisioner.files_dir.join(&tail);
    let file = actix_files::NamedFile::open_async(&full)
        .await
        .map_err(|_| ApiError::NotFound(format!("no file {tail}")))?;
    Ok(file.into_response(&req))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(script).service(answer).service(files);
}
