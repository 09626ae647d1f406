//! Performing scheduled reboots. A run that schedules a reboot writes it
//! as a row in the transaction that records the run's result
//! (`db::reboots`); the reboot clock performs each row at its due time
//! through whatever powers the machines (the power command, the simulated
//! machines) and then removes it. At start it reads the rows a previous
//! kiln left — a crash during the reboot delay — and performs the overdue
//! ones at once, so no machine is left halfway to its installer.
//!
//! One clock performs a reboot once: it knows every row it has taken on,
//! whether it heard of it at start or through `RebootScheduled`. A row is
//! removed only after it was performed, so a crash in between performs it
//! again after the restart rather than never.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use sea_orm::DatabaseConnection;

use crate::actors::event_bus::Heard;
use crate::actors::hub::persistently;
use crate::actors::in_flight::Held;
use crate::db::reboots::{self, PendingReboot};
use crate::domain::Fact;
use crate::orchestrator::Orchestrator;

/// What power-cycles a machine when its reboot is due.
pub trait PowerCycle {
    /// Cycles the machine of `reboot`; resolves once it was reset (what
    /// the machine does afterwards is its own). `held` keeps kiln
    /// unsettled; work that outlives the call takes another hold on it.
    fn cycle(
        &self,
        reboot: &PendingReboot,
        held: &Held,
    ) -> LocalBoxFuture<'static, Result<(), String>>;

    /// Whether this powers the machine of node `node_id` at all (a node
    /// with no BMC and no power command reboots itself).
    fn powers(&self, node_id: i64) -> LocalBoxFuture<'static, bool>;
}

/// Whether any of `machines` powers node `node_id`.
async fn any_powers(machines: &[Rc<dyn PowerCycle>], node_id: i64) -> bool {
    for machine in machines {
        if machine.powers(node_id).await {
            return true;
        }
    }
    false
}

/// Performs every scheduled reboot at its due time.
pub struct RebootClock {
    db: DatabaseConnection,
    orchestrator: Orchestrator,
    machines: Vec<Rc<dyn PowerCycle>>,
    /// Every row taken on since start.
    taken: HashSet<i64>,
}

impl RebootClock {
    /// A clock that cycles machines through `machines` (none: machines
    /// reboot themselves, and the rows are only cleared when due).
    pub fn new(orchestrator: Orchestrator, machines: Vec<Rc<dyn PowerCycle>>) -> Self {
        Self {
            db: orchestrator.db().clone(),
            orchestrator,
            machines,
            taken: HashSet::new(),
        }
    }

    /// Reads reboots with `read` and takes on those not taken yet; `held`
    /// lasts until they are.
    fn read_and_take<F>(&self, read: F, held: Option<Held>, ctx: &mut Context<Self>)
    where
        F: std::future::Future<Output = Result<Vec<PendingReboot>, crate::db::RepoError>> + 'static,
    {
        let shutdown = self.orchestrator.shutdown().clone();
        ctx.spawn(
            shutdown
                .track(read)
                .into_actor(self)
                .map(move |read, clock, _| {
                    let _held = held;
                    match read {
                        Ok(owed) => owed.into_iter().for_each(|r| clock.take(r)),
                        Err(e) => tracing::error!(error = %e, "cannot read scheduled reboots"),
                    }
                }),
        );
    }

    /// Waits until `reboot` is due, performs it and removes its row. Its
    /// id stays taken: a read that saw the row before it was removed
    /// cannot hand it over a second time.
    fn take(&mut self, reboot: PendingReboot) {
        if !self.taken.insert(reboot.id) {
            return;
        }
        // Kiln is not settled while a machine it powers owes a reboot;
        // without power control the row is only cleared when due. The
        // hold is taken before asking, so kiln never looks settled while
        // the answer is on its way.
        let mut held = (!self.machines.is_empty()).then(|| self.orchestrator.hold());
        let machines = self.machines.clone();
        let orchestrator = self.orchestrator.clone();
        let db = self.db.clone();
        let shutdown = self.orchestrator.shutdown().clone();
        // A stopping kiln drops the wait (or the power cycle): the row
        // stays, and the next start performs it.
        self.orchestrator.shutdown().spawn_local(async move {
            if held.is_some() && !any_powers(&machines, reboot.node_id).await {
                held = None;
            }
            let wait = (reboot.due_at - crate::db::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait).await;
            match &held {
                Some(held) => perform(&orchestrator, &machines, &reboot, held).await,
                None => tracing::debug!(
                    node_id = reboot.node_id,
                    "no power control: the machine reboots itself"
                ),
            }
            let removed = persistently("removing a performed reboot", &shutdown, || async {
                Ok(reboots::performed(&db, reboot.id).await?)
            })
            .await;
            if let Err(e) = removed {
                tracing::error!(reboot = reboot.id, error = %e, "cannot remove a performed reboot");
            }
        });
    }
}

/// Cycles the machine through each of `machines`. A failure (the BMC's
/// own message) puts the noderole that scheduled the reboot in error: the
/// machine will not come back by itself, and retrying the noderole
/// schedules the reboot again.
async fn perform(
    orchestrator: &Orchestrator,
    machines: &[Rc<dyn PowerCycle>],
    reboot: &PendingReboot,
    held: &Held,
) {
    let late_ms = (crate::db::now() - reboot.due_at).num_milliseconds().max(0);
    tracing::info!(
        node_id = reboot.node_id,
        reboot = reboot.id,
        late_ms,
        reason = %reboot.reason,
        "performing a scheduled reboot"
    );
    for machine in machines {
        if let Err(e) = machine.cycle(reboot, held).await {
            tracing::error!(node_id = reboot.node_id, reboot = reboot.id, error = %e, "power cycle failed");
            if let Some(noderole_id) = reboot.noderole_id {
                let reason = format!("the reboot into the installer failed: {e}\n");
                // Retried through database faults: only the BMC failed here.
                let recorded =
                    persistently("recording a failed reboot", orchestrator.shutdown(), || {
                        orchestrator.fail_unreturned(noderole_id, reason.clone())
                    })
                    .await;
                if let Err(e) = recorded {
                    tracing::error!(noderole = noderole_id, error = %e, "cannot record the failed reboot");
                }
            }
        }
    }
}

impl Actor for RebootClock {
    type Context = Context<Self>;

    /// The reboots a previous kiln scheduled and did not perform.
    fn started(&mut self, ctx: &mut Self::Context) {
        let db = self.db.clone();
        self.read_and_take(async move { reboots::pending(&db).await }, None, ctx);
    }
}

impl Handler<Heard> for RebootClock {
    type Result = ();

    fn handle(&mut self, Heard { fact, held }: Heard, ctx: &mut Self::Context) {
        let Fact::RebootScheduled(reboot) = fact else {
            return;
        };
        let db = self.db.clone();
        let node_id = reboot.node_id;
        self.read_and_take(
            async move { reboots::pending_of_node(&db, node_id).await },
            Some(held),
            ctx,
        );
    }
}
