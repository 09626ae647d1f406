//! provisioner-dhcp-database: kiln's DHCP answers and the exported host
//! files follow every node's bootenv. Its jig reloads kiln's DHCP table
//! and rewrites `dhcpd-hosts.conf` and `dnsmasq-hosts`; its hook hears every
//! bootenv change (and every enrolment, which renames a machine's host
//! entries), records the node's new bootenv in its noderoles' data and
//! queues a priority run of all of them, so the answers change before the
//! node reboots.

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::BoxFuture;
use sea_orm::DatabaseConnection;

use super::{read_persistently, rerun_all, wrote_files};
use crate::actors::event_bus::Heard;
use crate::db::{hosts, networks};
use crate::domain::Fact;
use crate::jigs::{Jig, JigContext, JigResult};
use crate::orchestrator::Orchestrator;
use crate::provisioner::dhcp::DhcpTable;
use crate::provisioner::export::{dnsmasq_hosts, isc_hosts, write_if_changed};
use crate::shutdown::Shutdown;

/// The role's name.
pub const DHCP_DATABASE: &str = "provisioner-dhcp-database";

/// The jig: reloads kiln's DHCP table and rewrites the exported host files.
pub struct DhcpDatabaseJig {
    pub db: DatabaseConnection,
    pub export_dir: PathBuf,
    /// Ends the retries of its database reads (see `read_persistently`).
    pub shutdown: Shutdown,
    pub boot_url: String,
    /// kiln's own DHCP server's table, reloaded so answers follow bootenvs.
    pub table: Option<Arc<DhcpTable>>,
}

impl Jig for DhcpDatabaseJig {
    fn run(&self, _: JigContext) -> BoxFuture<'static, JigResult> {
        let db = self.db.clone();
        let dir = self.export_dir.clone();
        let shutdown = self.shutdown.clone();
        let boot_url = self.boot_url.clone();
        let table = self.table.clone();
        Box::pin(async move {
            let result = async {
                let hosts =
                    read_persistently("reading the hosts", &shutdown, || hosts::list(&db)).await?;
                if let Some(table) = &table {
                    let networks = read_persistently("reading the networks", &shutdown, || {
                        networks::list(&db)
                    })
                    .await?;
                    table.replace(hosts.clone(), networks);
                }
                let mut written = Vec::new();
                for (file, content) in [
                    ("dhcpd-hosts.conf", isc_hosts(&hosts, &boot_url)),
                    ("dnsmasq-hosts", dnsmasq_hosts(&hosts)),
                ] {
                    if write_if_changed(&dir.join(file), &content)
                        .map_err(|e| format!("{file}: {e}"))?
                    {
                        written.push(file.to_string());
                    }
                }
                Ok(written)
            }
            .await;
            wrote_files(result)
        })
    }
}

/// The hook: a bootenv change or an enrolment re-runs every DHCP database
/// noderole.
pub struct DhcpDatabaseRole {
    orchestrator: Orchestrator,
}

impl DhcpDatabaseRole {
    pub fn new(orchestrator: Orchestrator) -> Self {
        Self { orchestrator }
    }
}

impl Actor for DhcpDatabaseRole {
    type Context = Context<Self>;
}

impl Handler<Heard> for DhcpDatabaseRole {
    type Result = ();

    fn handle(&mut self, Heard { fact, held }: Heard, ctx: &mut Self::Context) {
        let Some(change) = BootenvEntry::of(&fact) else {
            return;
        };
        let orchestrator = self.orchestrator.clone();
        orchestrator.trace().record(
            "EventBus",
            "DhcpDatabaseRole",
            fact.name(),
            fact.node(),
            fact.summary(),
        );
        // Waiting keeps hook runs in the order the changes happened.
        let shutdown = orchestrator.shutdown().clone();
        ctx.wait(
            shutdown
                .track(async move {
                    // Done with the fact once this ends, not when the handler returns.
                    let _held = held;
                    let reason = change.reason;
                    let node = change.node.clone();
                    let result = rerun_all(
                        &orchestrator,
                        "DhcpDatabaseRole",
                        DHCP_DATABASE,
                        reason,
                        Arc::new(move |data| change.record(data)),
                    )
                    .await;
                    if let Err(e) = result {
                        tracing::error!(error = %e, %node, "dhcp database hook failed");
                    }
                })
                .into_actor(self),
        );
    }
}

/// What a fact changes in the role's record of every node's bootenv: a
/// bootenv change, or a node enrolled under its operator's name (the
/// discovered name it replaces is dropped).
struct BootenvEntry {
    node: String,
    bootenv: String,
    replaces: Option<String>,
    reason: &'static str,
}

impl BootenvEntry {
    fn of(fact: &Fact) -> Option<Self> {
        match fact {
            Fact::BootenvChanged(changed) => Some(Self {
                node: changed.node.clone(),
                bootenv: changed.to.clone(),
                replaces: None,
                reason: "bootenv-changed",
            }),
            Fact::NodeEnrolled(enrolled) => Some(Self {
                node: enrolled.node.clone(),
                bootenv: enrolled.bootenv.clone(),
                replaces: Some(enrolled.merged.clone()),
                reason: "node-enrolled",
            }),
            _ => None,
        }
    }

    fn record(&self, data: &mut serde_json::Value) {
        if let Some(old) = &self.replaces {
            if let Some(bootenvs) = data["bootenvs"].as_object_mut() {
                bootenvs.remove(old);
            }
        }
        data["bootenvs"][&self.node] = serde_json::Value::String(self.bootenv.clone());
    }
}
