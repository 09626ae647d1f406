//! provisioner-dns-database: a new node means new names; its noderoles are
//! re-run so the zones follow the nodes.

use std::sync::Arc;

use actix::prelude::*;

use super::rerun_all;
use crate::actors::runtime::Runtime;
use crate::domain::Fact;

pub const DNS_DATABASE_ROLE: &str = "provisioner-dns-database";

pub struct DnsDatabaseRole {
    rt: Arc<Runtime>,
}

impl DnsDatabaseRole {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

impl Actor for DnsDatabaseRole {
    type Context = Context<Self>;
}

impl Handler<Fact> for DnsDatabaseRole {
    type Result = ();

    fn handle(&mut self, fact: Fact, ctx: &mut Self::Context) {
        let Fact::NodeCreated(created) = fact else {
            return;
        };
        let rt = self.rt.clone();
        rt.trace.record(
            "EventBus",
            "DnsDatabaseRole",
            "NodeCreated",
            &created.node,
            "",
        );
        ctx.wait(
            async move {
                if let Err(e) = rerun_all(
                    &rt,
                    "DnsDatabaseRole",
                    DNS_DATABASE_ROLE,
                    "node-created",
                    |_| {},
                )
                .await
                {
                    tracing::error!(error = %e, "dns database hook failed");
                }
            }
            .into_actor(self),
        );
    }
}
