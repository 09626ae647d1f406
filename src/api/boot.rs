//! `/boot/...`: what machines fetch while they network-boot, without an
//! admin token: their iPXE script, their installer's answer file, and
//! kernels and initrds (streamed, with HEAD and Range).
//!
//! A node whose bootenv needs a token (the discovery image, installers)
//! is issued one at most once per boot (`provisioner::boots`): the script
//! and answer file of one boot carry the same token, and a fetch from
//! another address than the node's is refused, so a stranger on the
//! provisioning network can neither take the token nor replace it.

use std::net::IpAddr;

use actix_web::{get, route, web, HttpRequest, HttpResponse};
use entity::{bootenv, node};

use super::ApiError;
use super::AppState;
use crate::db::{bootenvs, nodes, Key};
use crate::domain::BootenvKind;
use crate::provisioner::boot::{ipxe_script, tree, variables};
use crate::provisioner::boots::BootToken;
use crate::provisioner::discovery;
use crate::provisioner::template::render_with;

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
    responses((status = 200, description = "The iPXE script for the node's bootenv (discovery for an unknown MAC)", body = String, content_type = "text/plain"), (status = 400, description = "not a MAC, named in error.field"), (status = 403, description = "asked from an address that is not the node's"), (status = 422, description = "the bootenv's template does not render"), (status = 503, description = "the database does not answer"))
)]
#[get("/boot/{mac}.ipxe")]
async fn script(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mac = parse_mac(&path)?;
    let urls = &state.boot_urls;
    let Some(node) = find_or_await(&state, &mac).await? else {
        state.sightings.boot_script(&mac, "sledgehammer");
        let discovery = bootenvs::get(&state.db, "sledgehammer").await?;
        let vars = variables(urls, None, None, &mac, None);
        return Ok(plain(
            ipxe_script(&discovery, &vars, &tree(None, &[])).map_err(render_error)?,
        ));
    };
    let bootenv = bootenvs::get(&state.db, &node.bootenv).await?;
    state.sightings.boot_script(&mac, &bootenv.name);
    let view = nodes::get_view(&state.db, &Key::Id(node.id)).await?;
    let token = if needs_token(&bootenv) {
        refuse_other_addresses(&state, &req, &view, &mac)?;
        claim_token(&state, &node, &mac).await?
    } else {
        state.boots.booted_from_disk(&mac);
        BootToken::Withheld
    };
    let ip = view
        .interfaces
        .iter()
        .find(|i| i.mac == mac)
        .and_then(|i| i.ip.clone());
    let vars = variables(urls, Some(&node), token.plain(), &mac, ip.as_deref());
    let tree = tree(view.inventory.as_ref(), &view.interfaces);
    Ok(plain(
        ipxe_script(&bootenv, &vars, &tree).map_err(render_error)?,
    ))
}

/// Whether machines booting `bootenv` call back and so need a node token:
/// the discovery image and installers do, a boot from disk does not.
fn needs_token(bootenv: &bootenv::Model) -> bool {
    bootenv.kind != BootenvKind::Local
}

/// This boot's token: fresh (its hash stored before the script goes out)
/// at the first boot route of a boot, the same one after that.
async fn claim_token(
    state: &AppState,
    node: &node::Model,
    mac: &str,
) -> Result<BootToken, ApiError> {
    let token = state.boots.claim(mac, node.token_due);
    if let BootToken::Fresh(plain) = &token {
        if let Err(e) = nodes::store_boot_token(&state.db, node.id, plain).await {
            state.boots.unclaim(mac);
            return Err(e.into());
        }
        tracing::info!(node = %node.name, %mac, "issued the node token of this boot");
    }
    Ok(token)
}

/// A route that carries a token answers only the node's own address when
/// kiln knows it (`auth.boot_address_check`): an interface's fixed
/// address, or what kiln's DHCP server leased to `mac`.
fn refuse_other_addresses(
    state: &AppState,
    req: &HttpRequest,
    view: &nodes::NodeView,
    mac: &str,
) -> Result<(), ApiError> {
    if !state.settings.auth.boot_address_check {
        return Ok(());
    }
    let mut known: Vec<IpAddr> = view
        .interfaces
        .iter()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    if let Some(leased) = state.dhcp_table.as_ref().and_then(|t| t.leased(mac)) {
        known.push(IpAddr::V4(leased));
    }
    if known.is_empty() {
        return Ok(());
    }
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    if peer.is_some_and(|p| known.contains(&p)) {
        return Ok(());
    }
    tracing::warn!(node = %view.node.name, %mac, peer = ?peer, "boot route refused: not the node's address");
    Err(ApiError::Forbidden {
        message: format!("the boot routes of {mac} answer only that node's own address"),
        field: Some("mac".into()),
    })
}

/// The node owning `mac`; a machine kiln's DHCP server just leased an
/// address to is waited for, so its discovery script carries a token.
async fn find_or_await(state: &AppState, mac: &str) -> Result<Option<node::Model>, ApiError> {
    match &state.dhcp_table {
        Some(table) => Ok(discovery::await_registration(&state.db, table, mac).await?),
        None => Ok(nodes::find_by_mac(&state.db, mac).await?),
    }
}

/// The installer's answer file, with this boot's token. A node booting
/// from disk has no installer and no token to be given: 409.
#[utoipa::path(
    get,
    path = "/boot/answers/{mac}",
    tag = "boot",
    params(("mac" = String, Path, description = "the installing interface's MAC")),
    responses((status = 200, description = "The installer's answer file, rendered from the node's bootenv", body = String, content_type = "text/plain"), (status = 400, description = "not a MAC, named in error.field"), (status = 403, description = "asked from an address that is not the node's"), (status = 404, description = "no node has this MAC"), (status = 409, description = "the node boots from disk: no answer file, no token"), (status = 422, description = "the bootenv's template does not render"), (status = 503, description = "the database does not answer"))
)]
#[get("/boot/answers/{mac}")]
async fn answer(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mac = parse_mac(&path)?;
    let node = nodes::find_by_mac(&state.db, &mac)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no node has MAC {mac}")))?;
    let bootenv = bootenvs::get(&state.db, &node.bootenv).await?;
    if !needs_token(&bootenv) {
        return Err(ApiError::Conflict(format!(
            "{} boots from disk (bootenv {}): it has no answer file",
            node.name, bootenv.name
        )));
    }
    let view = nodes::get_view(&state.db, &Key::Id(node.id)).await?;
    refuse_other_addresses(&state, &req, &view, &mac)?;
    let token = claim_token(&state, &node, &mac).await?;
    let vars = variables(&state.boot_urls, Some(&node), token.plain(), &mac, None);
    Ok(plain(
        render_with(
            &bootenv.template,
            &vars,
            &tree(view.inventory.as_ref(), &view.interfaces),
        )
        .map_err(render_error)?,
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
