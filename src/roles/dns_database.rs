//! provisioner-dns-database: the BIND zones follow the nodes. Its jig
//! rewrites each network's forward and reverse zone (a serial that only
//! grows, and only when a record changed); its hook re-runs its noderoles
//! when a node is created, as a new node means new names.

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
use crate::provisioner::export::{forward_zone, reverse_origin, reverse_zone, write_zone};
use crate::shutdown::Shutdown;

/// The role's name.
pub const DNS_DATABASE: &str = "provisioner-dns-database";

/// The jig: rewrites each network's forward and reverse zone.
pub struct DnsDatabaseJig {
    pub db: DatabaseConnection,
    pub export_dir: PathBuf,
    /// Ends the retries of its database reads (see `read_persistently`).
    pub shutdown: Shutdown,
}

impl Jig for DnsDatabaseJig {
    fn run(&self, _: JigContext) -> BoxFuture<'static, JigResult> {
        let db = self.db.clone();
        let dir = self.export_dir.clone();
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let result = async {
                let hosts =
                    read_persistently("reading the hosts", &shutdown, || hosts::list(&db)).await?;
                let nets =
                    read_persistently("reading the networks", &shutdown, || networks::list(&db))
                        .await?;
                let mut written = Vec::new();
                for net in nets.iter().filter(|n| !n.domain.is_empty()) {
                    let ns = net.router.clone().unwrap_or_else(|| "127.0.0.1".into());
                    let forward = |serial| Some(forward_zone(&net.domain, &ns, &hosts, serial));
                    let file = format!("db.{}", net.domain);
                    if write_zone(&dir.join(&file), forward)? {
                        written.push(file);
                    }
                    if let Some((origin, _)) = reverse_origin(&net.subnet) {
                        let reverse =
                            |serial| reverse_zone(&net.subnet, &net.domain, &hosts, serial);
                        let file = format!("db.{origin}");
                        if write_zone(&dir.join(&file), reverse)? {
                            written.push(file);
                        }
                    }
                }
                Ok(written)
            }
            .await;
            wrote_files(result)
        })
    }
}

/// The hook: a new node re-runs every DNS database noderole.
pub struct DnsDatabaseRole {
    orchestrator: Orchestrator,
}

impl DnsDatabaseRole {
    pub fn new(orchestrator: Orchestrator) -> Self {
        Self { orchestrator }
    }
}

impl Actor for DnsDatabaseRole {
    type Context = Context<Self>;
}

impl Handler<Heard> for DnsDatabaseRole {
    type Result = ();

    fn handle(&mut self, Heard { fact, held }: Heard, ctx: &mut Self::Context) {
        let Fact::NodeCreated(created) = fact else {
            return;
        };
        let orchestrator = self.orchestrator.clone();
        orchestrator.trace().record(
            "EventBus",
            "DnsDatabaseRole",
            "NodeCreated",
            &created.node,
            "",
        );
        let shutdown = orchestrator.shutdown().clone();
        ctx.wait(
            shutdown
                .track(async move {
                    // Done with the fact once this ends, not when the handler returns.
                    let _held = held;
                    if let Err(e) = rerun_all(
                        &orchestrator,
                        "DnsDatabaseRole",
                        DNS_DATABASE,
                        "node-created",
                        Arc::new(|_| {}),
                    )
                    .await
                    {
                        tracing::error!(error = %e, "dns database hook failed");
                    }
                })
                .into_actor(self),
        );
    }
}
