//! What a simulated machine's discovery image reports: when a node's
//! inventory role starts waiting, the simulated machine answers with a
//! hardware report through `PUT /api/v2/nodes/{key}/inventory`, as the
//! real discovery image does after its alive callback. It uses the node
//! token the machine got from its last boot script, and the admin token
//! for a machine the simulator never booted (a node defined alive in a
//! cluster file: it is "already running" and holds no token of kiln's).
//!
//! The report is made up from what kiln knows of the node (a NIC per
//! interface, with its MAC) and fixed hardware, so filters and templates
//! have something real to read.

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use sea_orm::DatabaseConnection;

use crate::actors::event_bus::Heard;
use crate::actors::trace::TraceRecorder;
use crate::db::{nodes, Key};
use crate::domain::{Fact, NoderoleState};
use crate::roles::INVENTORY;
use crate::shutdown::Shutdown;

/// Node tokens simulated machines got from their boot scripts, by node name.
pub type MachineTokens = Arc<DashMap<String, String>>;

/// Reports a simulated machine's inventory whenever its inventory role waits.
pub struct InventoryReporter {
    pub db: DatabaseConnection,
    pub api_url: String,
    /// For machines the simulator never booted.
    pub admin_token: String,
    pub tokens: MachineTokens,
    pub trace: Arc<TraceRecorder>,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
}

impl Actor for InventoryReporter {
    type Context = Context<Self>;
}

impl Handler<Heard> for InventoryReporter {
    type Result = ();

    fn handle(&mut self, Heard { fact, held }: Heard, _: &mut Self::Context) {
        let Fact::NoderoleStateChanged(changed) = fact else {
            return;
        };
        if changed.role != INVENTORY || changed.to != NoderoleState::Transition {
            return;
        }
        let db = self.db.clone();
        let url = format!("{}/api/v2/nodes/{}/inventory", self.api_url, changed.node);
        let token = self
            .tokens
            .get(&changed.node)
            .map(|t| t.clone())
            .unwrap_or_else(|| self.admin_token.clone());
        let trace = self.trace.clone();
        let http = self.http.clone();
        self.shutdown.spawn_local(async move {
            // Kiln is not settled until the report is in.
            let _held = held;
            let report = async {
                let view = nodes::get_view(&db, &Key::Id(changed.node_id))
                    .await
                    .map_err(|e| e.to_string())?;
                let body = simulated_inventory(&view);
                trace.record("Machine", "Api", "Callback", &changed.node, "inventory");
                let mut request = http.put(&url).json(&body);
                if !token.is_empty() {
                    request = request.bearer_auth(&token);
                }
                request
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("inventory report: {e}"))?;
                Ok::<(), String>(())
            };
            if let Err(e) = report.await {
                tracing::warn!(node = %changed.node, error = %e, "simulated machine could not report its inventory");
            }
        });
    }
}

/// The hardware of a simulated machine.
pub fn simulated_inventory(view: &nodes::NodeView) -> serde_json::Value {
    let nics: Vec<serde_json::Value> = view
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, iface)| {
            serde_json::json!({
                "name": format!("eth{i}"),
                "mac": iface.mac,
                "driver": "e1000",
                "speed_mbps": 1000,
                "lldp": null,
            })
        })
        .collect();
    serde_json::json!({
        "cpus": {"count": 2, "model": "kiln simulated CPU"},
        "memory_mib": 4096,
        "disks": [{
            "name": "vda",
            "size_bytes": 34359738368u64,
            "model": "kiln simulated disk",
            "serial": format!("sim-{}", view.node.id),
            "rotational": false,
        }],
        "nics": nics,
        "system": {"vendor": "kiln", "product": "simulated machine", "serial": view.node.name},
        "bmc": null,
    })
}
