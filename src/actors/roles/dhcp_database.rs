//! provisioner-dhcp-database: on every bootenv change it records the node's
//! new bootenv in its noderoles' data and queues a priority run of all of
//! them, so kiln's DHCP answers follow before the node reboots.

use std::sync::Arc;

use actix::prelude::*;

use super::rerun_all;
use crate::actors::runtime::Runtime;
use crate::domain::Fact;

pub const DHCP_DATABASE_ROLE: &str = "provisioner-dhcp-database";

pub struct DhcpDatabaseRole {
    rt: Arc<Runtime>,
}

impl DhcpDatabaseRole {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

impl Actor for DhcpDatabaseRole {
    type Context = Context<Self>;
}

impl Handler<Fact> for DhcpDatabaseRole {
    type Result = ();

    fn handle(&mut self, fact: Fact, ctx: &mut Self::Context) {
        let Fact::BootenvChanged(changed) = fact else {
            return;
        };
        let rt = self.rt.clone();
        rt.trace.record(
            "EventBus",
            "DhcpDatabaseRole",
            "BootenvChanged",
            &changed.node,
            format!("{} -> {}", changed.from, changed.to),
        );
        // Waiting keeps hook runs in the order the changes happened.
        ctx.wait(
            async move {
                let node = changed.node.clone();
                let to = changed.to.clone();
                let result = rerun_all(
                    &rt,
                    "DhcpDatabaseRole",
                    DHCP_DATABASE_ROLE,
                    "bootenv-changed",
                    move |data| {
                        data["bootenvs"][&node] = serde_json::Value::String(to.clone());
                    },
                )
                .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, node = %changed.node, "dhcp database hook failed");
                }
            }
            .into_actor(self),
        );
    }
}
