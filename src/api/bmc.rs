//! A node's BMC on the wire, and `/api/v2/nodes/{key}/power`: what the
//! machine's power is and the buttons to change it. The password is
//! write-only: requests may carry it, responses only say whether one is
//! set.

use actix_web::{get, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use entity::node_bmc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Admin;
use super::body;
use super::{ApiError, AppState};
use crate::bmc::{DriverKind, NextBoot, PowerAction, PowerState, Secret};
use crate::db::bmcs::BmcWrite;
use crate::db::Key;
use crate::domain::bmc::{prepare, BmcSpec};
use crate::provisioner::power::PowerReading;

/// A node's BMC as the operator sets it (POST/PUT nodes, cluster files).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BmcInput {
    pub driver: DriverKind,
    /// `host[:port]` (ipmi) or a base URL such as `https://10.0.0.5` (redfish).
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub username: String,
    /// Write-only. Absent: keep the stored one; empty: remove it.
    #[schema(format = Password)]
    pub password: Option<String>,
    /// The Redfish system id; absent: the only system the BMC has.
    pub system: Option<String>,
    #[serde(default = "yes")]
    pub verify_tls: bool,
}

fn yes() -> bool {
    true
}

impl BmcInput {
    /// The row to store, checked and with its password sealed.
    pub fn prepare(
        &self,
        key: Option<&crate::bmc::SecretKey>,
        field: &str,
    ) -> Result<BmcWrite, ApiError> {
        let spec = BmcSpec {
            driver: self.driver,
            address: self.address.clone(),
            username: self.username.clone(),
            password: self.password.clone().map(Secret::new),
            system: self.system.clone(),
            verify_tls: self.verify_tls,
        };
        Ok(prepare(&spec, key, field)?)
    }
}

/// A node's BMC as kiln shows it: never the password.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BmcView {
    pub driver: DriverKind,
    pub address: String,
    pub username: String,
    pub password_set: bool,
    pub system: Option<String>,
    pub verify_tls: bool,
    /// What the BMC last reported.
    pub power: PowerView,
}

impl From<node_bmc::Model> for BmcView {
    fn from(row: node_bmc::Model) -> Self {
        Self {
            driver: DriverKind::parse(&row.driver).unwrap_or(DriverKind::None),
            password_set: row.password_sealed.is_some(),
            power: PowerView {
                state: PowerState::parse(&row.power_state).unwrap_or(PowerState::Unknown),
                checked_at: row.power_checked_at,
                error: row.power_error,
            },
            address: row.address,
            username: row.username,
            system: row.system,
            verify_tls: row.verify_tls,
        }
    }
}

/// A machine's power, as its BMC last reported it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PowerView {
    pub state: PowerState,
    pub checked_at: Option<DateTime<Utc>>,
    /// Why the last call to the BMC failed, if it did.
    pub error: Option<String>,
}

impl From<PowerReading> for PowerView {
    fn from(r: PowerReading) -> Self {
        Self {
            state: r.state,
            checked_at: r.checked_at,
            error: r.error,
        }
    }
}

/// A press of a power button.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    pub action: PowerAction,
    /// Set the next boot (once) before the action.
    pub next_boot: Option<NextBoot>,
}

/// Asks the BMC now; a BMC that fails is shown as `unknown` with its
/// error (the reading is the answer, not a failure of the request).
#[utoipa::path(
    get,
    path = "/api/v2/nodes/{key}/power",
    tag = "nodes",
    params(("key" = String, Path, description = "id or name")),
    responses((status = 200, description = "The power state the BMC reports now", body = PowerView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "the node has no BMC"))
)]
#[get("/nodes/{key}/power")]
async fn status(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    let reading = match state.power.check(&key).await {
        Ok(reading) => reading,
        Err(crate::provisioner::power::PowerError::Bmc(e))
            if !matches!(e, crate::bmc::BmcError::NotConfigured { .. }) =>
        {
            PowerReading {
                state: PowerState::Unknown,
                checked_at: Some(crate::db::now()),
                error: Some(e.to_string()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok().json(PowerView::from(reading)))
}

#[utoipa::path(
    put,
    path = "/api/v2/nodes/{key}/power",
    tag = "nodes",
    params(("key" = String, Path, description = "id or name")),
    request_body = PowerRequest,
    responses((status = 200, description = "Done; the state the BMC then reports", body = PowerView), (status = 401, description = "missing or wrong token"), (status = 404, description = "unknown id or name"), (status = 409, description = "the node has no BMC"), (status = 422, description = "invalid field, named in error.field"), (status = 502, description = "the BMC failed or refused; its message"))
)]
#[put("/nodes/{key}/power")]
async fn act(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: PowerRequest = body::parse(&raw)?;
    let reading = state
        .power
        .perform(&Key::parse(&path), req.action, req.next_boot)
        .await?;
    Ok(HttpResponse::Ok().json(PowerView::from(reading)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(status).service(act);
}
