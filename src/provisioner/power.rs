//! Power control: when a scheduled reboot is due (see `reboots.rs`), the
//! configured `power.command` (an IPMI wrapper, a PDU client, a VM monitor)
//! cycles the machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use sea_orm::DatabaseConnection;

use super::reboots::PowerCycle;
use crate::actors::in_flight::Held;
use crate::actors::trace::TraceRecorder;
use crate::bmc::command::{run_hook, HookCall};
use crate::db::reboots::PendingReboot;
use crate::db::{nodes, Key};
use crate::provisioner::boots::Boots;

/// How long a power command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the power command for every reboot when it is due.
pub struct PowerDriver {
    db: DatabaseConnection,
    command: PathBuf,
    boots: Arc<Boots>,
    trace: Arc<TraceRecorder>,
}

impl PowerDriver {
    pub fn new(
        db: DatabaseConnection,
        command: PathBuf,
        boots: Arc<Boots>,
        trace: Arc<TraceRecorder>,
    ) -> Self {
        Self {
            db,
            command,
            boots,
            trace,
        }
    }
}

impl PowerCycle for PowerDriver {
    fn cycle(
        &self,
        reboot: &PendingReboot,
        _: &Held,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let db = self.db.clone();
        let command = self.command.clone();
        let boots = self.boots.clone();
        let trace = self.trace.clone();
        let node_id = reboot.node_id;
        Box::pin(async move {
            let node = nodes::get_view(&db, &Key::Id(node_id))
                .await
                .map_err(|e| e.to_string())?;
            let name = node.node.name.clone();
            trace.record("PowerDriver", "Machine", "PowerCycle", &name, "");
            // The machine's interfaces start a new boot first, so the boot
            // script it fetches next issues it a fresh token.
            for interface in &node.interfaces {
                boots.started(&interface.mac);
            }
            let mac = node
                .interfaces
                .first()
                .map(|i| i.mac.clone())
                .unwrap_or_default();
            run(&command, &name, &mac).await?;
            tracing::info!(node = %name, "power-cycled");
            Ok(())
        })
    }
}

/// Runs `command` to cycle the machine `node` (MAC `mac`), through the
/// `command` BMC driver's runner (the same environment, timeout and kill).
async fn run(command: &Path, node: &str, mac: &str) -> Result<(), String> {
    let call = HookCall {
        node,
        mac,
        action: "cycle",
        ..HookCall::default()
    };
    run_hook(command, COMMAND_TIMEOUT, &call)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
