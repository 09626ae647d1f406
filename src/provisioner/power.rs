//! Power control: when a role schedules a node's reboot, the configured
//! `power.command` (an IPMI wrapper, a PDU client, a VM monitor) cycles the
//! machine once the delay has passed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::process::Command;

use crate::actors::event_bus::Heard;
use crate::actors::trace::TraceRecorder;
use crate::db::{nodes, Key};
use crate::domain::facts::RebootScheduled;
use crate::domain::Fact;
use crate::provisioner::boots::Boots;
use crate::shutdown::Shutdown;

/// How long a power command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the power command for every scheduled reboot.
pub struct PowerDriver {
    db: DatabaseConnection,
    command: PathBuf,
    boots: Arc<Boots>,
    trace: Arc<TraceRecorder>,
    shutdown: Shutdown,
}

impl PowerDriver {
    pub fn new(
        db: DatabaseConnection,
        command: PathBuf,
        boots: Arc<Boots>,
        trace: Arc<TraceRecorder>,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            db,
            command,
            boots,
            trace,
            shutdown,
        }
    }
}

impl Actor for PowerDriver {
    type Context = Context<Self>;
}

impl Handler<Heard> for PowerDriver {
    type Result = ();

    fn handle(&mut self, Heard { fact, held }: Heard, _: &mut Self::Context) {
        let Fact::RebootScheduled(reboot) = fact else {
            return;
        };
        let db = self.db.clone();
        let command = self.command.clone();
        let boots = self.boots.clone();
        let trace = self.trace.clone();
        self.shutdown.spawn_local(async move {
            // Done with the fact once this ends, not when the handler returns.
            let _held = held;
            tokio::time::sleep(Duration::from_millis(reboot.delay_ms)).await;
            trace.record("PowerDriver", "Machine", "PowerCycle", &reboot.node, "");
            match cycle(&db, &command, &boots, &reboot).await {
                Ok(()) => tracing::info!(node = %reboot.node, "power-cycled"),
                Err(e) => tracing::error!(node = %reboot.node, error = %e, "power cycle failed"),
            }
        });
    }
}

/// Runs the power command; the machine's interfaces start a new boot
/// first, so the boot script it fetches next issues it a fresh token.
async fn cycle(
    db: &DatabaseConnection,
    command: &PathBuf,
    boots: &Boots,
    reboot: &RebootScheduled,
) -> Result<(), String> {
    let node = nodes::get_view(db, &Key::Id(reboot.node_id))
        .await
        .map_err(|e| e.to_string())?;
    for interface in &node.interfaces {
        boots.started(&interface.mac);
    }
    let mac = node
        .interfaces
        .first()
        .map(|i| i.mac.clone())
        .unwrap_or_default();
    let run = Command::new(command)
        .env("KILN_NODE", &reboot.node)
        .env("KILN_MAC", mac)
        .env("KILN_POWER_ACTION", "cycle")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| format!("{} took over {COMMAND_TIMEOUT:?}", command.display()))?
        .map_err(|e| format!("cannot run {}: {e}", command.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} exited with {}: {}",
            command.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
