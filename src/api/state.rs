//! What every handler sees: built once by `app::Application::build` and
//! shared through `web::Data`. Handlers hold no state of their own.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::db::Backend;
use crate::orchestrator::Orchestrator;
use crate::provisioner::boot::BootUrls;
use crate::provisioner::boots::Boots;
use crate::provisioner::dhcp::{DhcpStats, DhcpTable};
use crate::provisioner::sightings::Sightings;
use crate::provisioner::tftp::TftpStats;
use crate::settings::Settings;
use tokio_util::sync::CancellationToken;

/// Shared state every request handler sees.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub backend: Backend,
    pub settings: Arc<Settings>,
    pub orchestrator: Orchestrator,
    /// Where nodes reach kiln, worked out once at start.
    pub boot_urls: BootUrls,
    /// What kiln last saw of each machine (DHCP answers, boot scripts).
    pub sightings: Arc<Sightings>,
    /// Each machine's current network boot: its node token is issued once.
    pub boots: Arc<Boots>,
    /// Nodes' BMCs: power status and actions.
    pub power: crate::provisioner::power::Power,
    /// What BMC passwords are sealed with (none: kiln keeps none).
    pub secret_key: Option<crate::bmc::SecretKey>,
    /// Kiln's DHCP table, when `dhcp.enabled` (boot routes consult its leases).
    pub dhcp_table: Option<Arc<DhcpTable>>,
    /// Kiln's DHCP server's counters, while it runs (for `/metrics`).
    pub dhcp_stats: Option<Arc<DhcpStats>>,
    /// Kiln's TFTP server's counters, while it runs (for `/metrics`).
    pub tftp_stats: Option<Arc<TftpStats>>,
    /// Fires when kiln stops serving HTTP, before it waits for the
    /// requests in flight: responses that never end on their own (the event
    /// stream) end then.
    pub http_stopping: CancellationToken,
}
