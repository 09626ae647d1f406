//! `GET /api/v2/leases`: the pool addresses kiln's DHCP server has
//! acknowledged, as the database keeps them (each written before its ACK
//! left).

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::body::Page;
use super::ApiError;
use super::AppState;
use crate::db::leases::{self, LeaseFilter};
use crate::db::nodes::normalise_mac;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this MAC's lease (any notation).
    mac: Option<String>,
    /// Only the lease of this address.
    ip: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

/// One acknowledged lease.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    pub mac: String,
    pub ip: String,
    /// The name the machine was registered under.
    pub hostname: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl From<entity::lease::Model> for LeaseView {
    fn from(row: entity::lease::Model) -> Self {
        Self {
            mac: row.mac,
            ip: row.ip,
            hostname: row.hostname,
            expires_at: row.expires_at,
        }
    }
}

/// Leases in the order they were last acknowledged.
#[utoipa::path(
    get,
    path = "/api/v2/leases",
    tag = "dhcp",
    params(ListQuery),
    responses((status = 200, description = "Acknowledged pool leases, expired ones included until replaced", body = [LeaseView]), (status = 401, description = "missing or wrong token"), (status = 422, description = "invalid field, named in error.field"), (status = 503, description = "the database does not answer"))
)]
#[get("/leases")]
async fn list(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::new(query.limit, query.offset)?;
    let mac = query
        .mac
        .as_deref()
        .map(|raw| {
            normalise_mac(raw).map_err(|reason| ApiError::Unprocessable {
                message: format!("mac: {reason}"),
                field: Some("mac".into()),
            })
        })
        .transpose()?;
    let ip = query
        .ip
        .as_deref()
        .map(|raw| {
            raw.parse::<std::net::Ipv4Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| ApiError::Unprocessable {
                    message: format!("ip: `{raw}` is not an IPv4 address"),
                    field: Some("ip".into()),
                })
        })
        .transpose()?;
    let filter = LeaseFilter {
        mac,
        ip,
        limit: page.limit,
        offset: page.offset,
    };
    let rows = leases::list(&state.db, &filter).await?;
    let views: Vec<LeaseView> = rows.into_iter().map(LeaseView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
}
