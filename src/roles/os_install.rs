//! provisioner-os-install, the seed's OS install: its jig schedules the
//! node's reboot into the installer, its `on_active` hook points the node
//! at that installer, and its watchdog fails the install when the machine
//! never comes back.
//!
//! A machine that never returns from the reboot (a dead disk, a firmware
//! that does not netboot, an installer that hangs) must not look installed
//! forever. Each `RebootScheduled` arms a deadline; the node calling back
//! `alive: true` disarms it; past it, the noderole that scheduled the
//! reboot goes to error with what kiln last saw of the machine in its
//! runlog. Deadlines live in memory; at start the watchdog re-arms them
//! from the database (machines down, off their local disk, with an
//! os-install noderole that recorded a reboot), counting from the reboot's
//! due time while it is still to be performed, else from when that
//! noderole finished, so a restart of kiln forgets no machine. Retrying the
//! noderole in error runs the install again, which schedules a new reboot
//! (`domain::lifecycle::retry_noderole`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::BoxFuture;

use crate::actors::event_bus::Heard;
use crate::actors::hub::persistently;
use crate::db::nodes::NodeChange;
use crate::db::{bootenvs, noderoles, nodes, reboots, Key};
use crate::domain::facts::{NoderoleStateChanged, RebootScheduled};
use crate::domain::nodes::update_node;
use crate::domain::{DomainError, Effects, Fact, NoderoleState};
use crate::jigs::{Jig, JigContext, JigResult};
use crate::orchestrator::Orchestrator;
use crate::provisioner::sightings::Sightings;

/// The role's name.
pub const OS_INSTALL: &str = "provisioner-os-install";

/// The OS installed when neither the noderole nor the node names one.
pub const DEFAULT_TARGET_OS: &str = "ubuntu-24.04";

/// The key of the wall where os-install records the reboot it scheduled
/// (its delay in ms): what a restarted kiln reads to keep watching for the
/// machine's return.
pub const REBOOT_WALL_KEY: &str = "reboot_scheduled_ms";

/// The jig: schedules the node's reboot (`sim.reboot_delay_ms` by default,
/// noderole data `reboot_delay_ms` to override) and returns at once, as
/// the seed's script jig did. The `RebootScheduled` fact it reports is
/// written as a reboot row with the run's result and published once that
/// committed; the reboot clock performs the row when it is due, through
/// whatever powers the machine (the power command, the simulator).
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
            let reboot = RebootScheduled {
                node_id: ctx.node.id,
                noderole_id: ctx.noderole_id,
                node: ctx.node.name.clone(),
                delay_ms,
            };
            JigResult {
                succeeded: true,
                wall: Some(serde_json::json!({ REBOOT_WALL_KEY: delay_ms })),
                runlog: format!("reboot of {} scheduled in {delay_ms}ms\n", ctx.node.name),
                error: None,
                facts: vec![Fact::RebootScheduled(reboot)],
            }
        })
    }
}

/// The `on_active` hook: the node boots its installer next and is not
/// alive until it comes back, so the annealer leaves it alone. Only the run
/// that really installed does this — never a destructive re-mark, and
/// never when the node already boots from disk.
pub struct OsInstallRole {
    orchestrator: Orchestrator,
}

impl OsInstallRole {
    pub fn new(orchestrator: Orchestrator) -> Self {
        Self { orchestrator }
    }
}

impl Actor for OsInstallRole {
    type Context = Context<Self>;
}

impl Handler<Heard> for OsInstallRole {
    type Result = ();

    fn handle(&mut self, Heard { fact, held }: Heard, ctx: &mut Self::Context) {
        let Fact::NoderoleStateChanged(changed) = fact else {
            return;
        };
        if changed.role != OS_INSTALL || changed.to != NoderoleState::Active || !changed.hooks {
            return;
        }
        let orchestrator = self.orchestrator.clone();
        orchestrator.trace().record(
            "EventBus",
            "OsInstallRole",
            "NoderoleStateChanged",
            &changed.node,
            "on_active",
        );
        let shutdown = orchestrator.shutdown().clone();
        ctx.wait(
            shutdown
                .track(async move {
                // Done with the fact once this ends, not when the handler returns.
                let _held = held;
                if let Err(e) = on_active(&orchestrator, &changed).await {
                    tracing::error!(error = %e, node = %changed.node, "os-install on_active failed");
                }
            })
            .into_actor(self),
        );
    }
}

async fn on_active(
    orchestrator: &Orchestrator,
    changed: &NoderoleStateChanged,
) -> Result<(), DomainError> {
    let (noderole_id, node_id) = (changed.noderole_id, changed.node_id);
    orchestrator
        .transact_retrying("OsInstallRole", "os-install on_active", move |txn| {
            Box::pin(async move {
                let nr = noderoles::get(txn, noderole_id).await?;
                let node = nodes::get(txn, &Key::Id(node_id)).await?;
                if nr.run_count != 1 || bootenvs::boots_from_disk(txn, &node.bootenv).await? {
                    return Ok(((), Effects::default()));
                }
                let target_os = nr
                    .committed_data
                    .get("target_os")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .or_else(|| node.target_os.clone())
                    .unwrap_or_else(|| DEFAULT_TARGET_OS.to_string());
                let change = NodeChange {
                    bootenv: Some(format!("{target_os}-install")),
                    alive: Some(false),
                    ..Default::default()
                };
                let (_, effects) = update_node(txn, &Key::Id(node.id), &change).await?;
                Ok(((), effects))
            })
        })
        .await
}

/// Watches every scheduled reboot until its node is alive again.
pub struct InstallWatchdog {
    orchestrator: Orchestrator,
    sightings: Arc<Sightings>,
    timeout: Duration,
    /// The newest reboot each node owes a return from, by generation.
    armed: HashMap<i64, u64>,
    generation: u64,
}

impl InstallWatchdog {
    pub fn new(orchestrator: Orchestrator, sightings: Arc<Sightings>, timeout: Duration) -> Self {
        Self {
            orchestrator,
            sightings,
            timeout,
            armed: HashMap::new(),
            generation: 0,
        }
    }

    fn arm(&mut self, reboot: RebootScheduled, ctx: &mut Context<Self>) {
        let wait = Duration::from_millis(reboot.delay_ms) + self.timeout;
        self.arm_for(reboot, wait, ctx);
    }

    /// Fails the noderole after `wait` unless the node came back meanwhile.
    fn arm_for(&mut self, reboot: RebootScheduled, wait: Duration, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        self.armed.insert(reboot.node_id, generation);
        ctx.run_later(wait, move |watchdog, ctx| {
            if watchdog.armed.get(&reboot.node_id) != Some(&generation) {
                return;
            }
            watchdog.armed.remove(&reboot.node_id);
            let orchestrator = watchdog.orchestrator.clone();
            let shutdown = orchestrator.shutdown().clone();
            if shutdown.is_stopping() {
                return;
            }
            let sightings = watchdog.sightings.clone();
            let timeout = watchdog.timeout;
            let stopping = shutdown.clone();
            ctx.spawn(
                shutdown
                    .track(async move {
                        let expired = persistently("expiring an install deadline", &stopping, || {
                            expire(&orchestrator, &sightings, &reboot, timeout)
                        });
                        if let Err(e) = expired.await {
                            tracing::error!(node = %reboot.node, error = %e, "install watchdog failed");
                        }
                    })
                    .into_actor(watchdog),
            );
        });
    }
}

/// Internal: reboots a previous kiln scheduled and never saw the end of.
#[derive(Message)]
#[rtype(result = "()")]
struct Rearm(Vec<(RebootScheduled, Duration)>);

/// The reboots the database says machines still owe a return from, each
/// with what is left of its deadline: counted from the reboot's due time
/// while it is still to be performed (a restart after a long outage
/// performs it only now), else from when the noderole scheduled it.
async fn owed_returns(
    orchestrator: &Orchestrator,
    timeout: Duration,
) -> Result<Vec<(RebootScheduled, Duration)>, crate::db::RepoError> {
    let owed = noderoles::awaiting_return(orchestrator.db(), OS_INSTALL).await?;
    let mut due: HashMap<i64, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for reboot in reboots::pending(orchestrator.db()).await? {
        let latest = due.entry(reboot.node_id).or_insert(reboot.due_at);
        *latest = (*latest).max(reboot.due_at);
    }
    let now = crate::db::now();
    Ok(owed
        .into_iter()
        .filter_map(|row| {
            let delay_ms = row.wall.get(REBOOT_WALL_KEY)?.as_u64()?;
            let wait = match due.get(&row.node_id) {
                Some(due_at) => (*due_at - now).to_std().unwrap_or_default() + timeout,
                None => {
                    let elapsed = (now - row.updated_at).to_std().unwrap_or_default();
                    (Duration::from_millis(delay_ms) + timeout).saturating_sub(elapsed)
                }
            };
            let reboot = RebootScheduled {
                node_id: row.node_id,
                noderole_id: row.noderole_id,
                node: row.node,
                delay_ms,
            };
            Some((reboot, wait))
        })
        .collect())
}

impl Actor for InstallWatchdog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let orchestrator = self.orchestrator.clone();
        let shutdown = orchestrator.shutdown().clone();
        let stopping = shutdown.clone();
        let timeout = self.timeout;
        ctx.spawn(
            shutdown
                .track(async move {
                    persistently("reading the reboots machines owe", &stopping, || async {
                        Ok(owed_returns(&orchestrator, timeout).await?)
                    })
                    .await
                })
                .into_actor(self)
                .map(|owed, _, ctx| match owed {
                    Ok(owed) => ctx.notify(Rearm(owed)),
                    Err(e) => tracing::error!(error = %e, "cannot re-arm the install watchdog"),
                }),
        );
    }
}

impl Handler<Rearm> for InstallWatchdog {
    type Result = ();

    fn handle(&mut self, Rearm(owed): Rearm, ctx: &mut Self::Context) {
        for (reboot, wait) in owed {
            // A reboot scheduled since start is newer; it keeps its own deadline.
            if self.armed.contains_key(&reboot.node_id) {
                continue;
            }
            tracing::info!(node = %reboot.node, wait_ms = wait.as_millis() as u64, "watching again for a machine's return");
            self.arm_for(reboot, wait, ctx);
        }
    }
}

impl Handler<Heard> for InstallWatchdog {
    type Result = ();

    fn handle(&mut self, Heard { fact, .. }: Heard, ctx: &mut Self::Context) {
        match fact {
            Fact::RebootScheduled(reboot) => self.arm(reboot, ctx),
            Fact::NodeAliveChanged(changed) if changed.alive => {
                self.armed.remove(&changed.node_id);
            }
            _ => {}
        }
    }
}

/// The deadline passed: unless the node is alive after all (it came back
/// without saying so through a fact this watchdog saw), fail the noderole.
async fn expire(
    orchestrator: &Orchestrator,
    sightings: &Sightings,
    reboot: &RebootScheduled,
    timeout: Duration,
) -> Result<(), crate::domain::DomainError> {
    let db = orchestrator.db();
    let node = nodes::get_view(db, &Key::Id(reboot.node_id)).await?;
    if node.node.alive {
        return Ok(());
    }
    let noderole = noderoles::get(db, reboot.noderole_id).await?;
    if noderole.state != NoderoleState::Active {
        return Ok(());
    }
    let macs: Vec<String> = node.interfaces.iter().map(|i| i.mac.clone()).collect();
    let reason = format!(
        "{} did not come back alive within {}s of its scheduled reboot (bootenv now {})\n{}",
        reboot.node,
        timeout.as_secs(),
        node.node.bootenv,
        sightings.describe(&macs)
    );
    tracing::warn!(node = %reboot.node, noderole = reboot.noderole_id, "{}", reason.trim_end());
    orchestrator
        .fail_unreturned(reboot.noderole_id, reason)
        .await
}
