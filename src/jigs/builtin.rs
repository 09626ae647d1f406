//! Builtin jigs: kiln's own roles, implemented in Rust.

use actix::Addr;
use futures::future::BoxFuture;

use super::{Jig, JigContext, JigResult};
use crate::actors::event_bus::{EventBus, Publish};
use crate::domain::facts::{Fact, RebootScheduled};

/// Role name of the OS installer role.
pub const BUILTIN_OS_INSTALL: &str = "provisioner-os-install";

/// The key of the wall where os-install records the reboot it scheduled
/// (its delay in ms): what a restarted kiln reads to keep watching for the
/// machine's return.
pub const REBOOT_WALL_KEY: &str = "reboot_scheduled_ms";

/// provisioner-os-install: schedules the node's reboot (`sim.reboot_delay_ms`
/// by default, noderole data `reboot_delay_ms` to override) and returns at
/// once, as the seed's script jig did. Whatever powers the machine (the
/// simulator, an IPMI driver) acts on the `RebootScheduled` fact.
pub struct OsInstallJig {
    pub default_delay_ms: u64,
}

impl Jig for OsInstallJig {
    fn run(&self, ctx: JigContext) -> BoxFuture<'static, JigResult> {
        let delay_ms = ctx
            .data
            .get("reboot_delay_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(self.default_delay_ms);
        Box::pin(async move {
            publish_reboot(&ctx.events, &ctx, delay_ms);
            JigResult {
                succeeded: true,
                wall: Some(serde_json::json!({ REBOOT_WALL_KEY: delay_ms })),
                runlog: format!("reboot of {} scheduled in {delay_ms}ms\n", ctx.node.name),
                error: None,
            }
        })
    }
}

fn publish_reboot(events: &Addr<EventBus>, ctx: &JigContext, delay_ms: u64) {
    ctx.trace.record(
        "Jig",
        "EventBus",
        "RebootScheduled",
        &ctx.node.name,
        format!("in {delay_ms}ms"),
    );
    events.do_send(Publish(Fact::RebootScheduled(RebootScheduled {
        node_id: ctx.node.id,
        noderole_id: ctx.noderole_id,
        node: ctx.node.name.clone(),
        delay_ms,
    })));
}
