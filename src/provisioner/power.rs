//! Power control: kiln asks each node's BMC (through its driver in
//! `crate::bmc`) what the machine's power is and changes it, for the API's
//! power buttons, the background poll and the os-install reboot. Every
//! answer is recorded on the node's BMC row; a change of state is published
//! as `PowerStateChanged` once that row committed.
//!
//! A node without a BMC of its own is powered by `power.command` when one
//! is set (today's hook for PDUs and VM monitors), through the command
//! driver.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use futures::StreamExt;

use super::boots::Boots;
use super::reboots::PowerCycle;
use crate::actors::in_flight::Held;
use crate::bmc::{
    BmcError, BmcTarget, DriverKind, Drivers, NextBoot, PowerAction, PowerState, SealError, Secret,
    SecretKey,
};
use crate::db::reboots::PendingReboot;
use crate::db::{bmcs, nodes, Key, RepoError};
use crate::domain::facts::PowerStateChanged;
use crate::domain::{DomainError, Effects, Fact};
use crate::orchestrator::Orchestrator;

/// Why a power request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The BMC failed or refused: its own message.
    #[error(transparent)]
    Bmc(#[from] BmcError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl From<RepoError> for PowerError {
    fn from(e: RepoError) -> Self {
        PowerError::Domain(e.into())
    }
}

/// What the BMC last said of the machine's power.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerReading {
    pub state: PowerState,
    pub checked_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Asks and drives nodes' BMCs.
#[derive(Clone)]
pub struct Power {
    orchestrator: Orchestrator,
    drivers: Arc<Drivers>,
    key: Option<SecretKey>,
    boots: Arc<Boots>,
    /// Whether nodes without a BMC are powered by `power.command`.
    command_fallback: bool,
}

impl Power {
    pub fn new(
        orchestrator: Orchestrator,
        drivers: Arc<Drivers>,
        key: Option<SecretKey>,
        boots: Arc<Boots>,
        command_fallback: bool,
    ) -> Self {
        Self {
            orchestrator,
            drivers,
            key,
            boots,
            command_fallback,
        }
    }

    /// How to reach the BMC of `node`, password opened for this call.
    pub async fn target(&self, node: &Key) -> Result<BmcTarget, PowerError> {
        Ok(self.reach(node).await?.0)
    }

    /// [`Self::target`], and whether the node has a BMC of its own (false:
    /// the `power.command` fallback, which is only ever asked to cycle and
    /// has no row to record a state on).
    async fn reach(&self, node: &Key) -> Result<(BmcTarget, bool), PowerError> {
        let view = nodes::get_view(self.orchestrator.db(), node).await?;
        let macs: Vec<String> = view.interfaces.iter().map(|i| i.mac.clone()).collect();
        let name = view.node.name.clone();
        let Some(bmc) = view.bmc else {
            if self.command_fallback {
                let target = BmcTarget {
                    node: name,
                    macs,
                    driver: DriverKind::Command,
                    address: String::new(),
                    username: String::new(),
                    password: Secret::default(),
                    system: None,
                    verify_tls: true,
                };
                return Ok((target, false));
            }
            return Err(BmcError::NotConfigured { node: name }.into());
        };
        let driver = DriverKind::parse(&bmc.driver).unwrap_or(DriverKind::None);
        if driver == DriverKind::None {
            return Err(BmcError::NotConfigured { node: name }.into());
        }
        let password = match (&bmc.password_sealed, &self.key) {
            (None, _) => Secret::default(),
            (Some(sealed), Some(key)) => key.open(sealed)?,
            (Some(_), None) => return Err(SealError::WrongKey.into()),
        };
        let target = BmcTarget {
            node: name,
            macs,
            driver,
            address: bmc.address,
            username: bmc.username,
            password,
            system: bmc.system,
            verify_tls: bmc.verify_tls,
        };
        Ok((target, true))
    }

    /// The node's power as its BMC reports it now (recorded, failures too).
    pub async fn check(&self, node: &Key) -> Result<PowerReading, PowerError> {
        let mut target = self.target(node).await?;
        self.learn_macs(node, &mut target).await;
        let asked = self.ask_status(&target).await;
        self.record(node, &target, &asked).await?;
        asked.map_err(Into::into)
    }

    /// Performs `action` (after setting the next boot, when asked) and
    /// returns the state the BMC then reports.
    pub async fn perform(
        &self,
        node: &Key,
        action: PowerAction,
        next_boot: Option<NextBoot>,
    ) -> Result<PowerReading, PowerError> {
        let (mut target, stored) = self.reach(node).await?;
        self.learn_macs(node, &mut target).await;
        let driver = self.driver(&target)?;
        self.orchestrator.trace().record(
            "Power",
            "Bmc",
            "PowerAction",
            &target.node,
            action.as_str(),
        );
        tracing::info!(node = %target.node, driver = target.driver.as_str(), action = action.as_str(), next_boot = next_boot.map(NextBoot::as_str), "power action");
        if let Some(next) = next_boot {
            if let Err(e) = driver.set_next_boot(&target, next).await {
                self.record(node, &target, &Err(e.clone())).await?;
                return Err(e.into());
            }
        }
        if matches!(action, PowerAction::Cycle | PowerAction::On) {
            // The machine starts a new boot: the boot script it fetches next
            // issues it a fresh token.
            target.macs.iter().for_each(|mac| self.boots.started(mac));
        }
        let asked_at = crate::db::now();
        if let Err(e) = driver.act(&target, action).await {
            if stored {
                self.record(node, &target, &Err(e.clone())).await?;
            }
            return Err(e.into());
        }
        if stored && matches!(action, PowerAction::Cycle | PowerAction::On) {
            let db = self.orchestrator.db();
            let row = nodes::get(db, node).await?;
            bmcs::record_powered_on(db, row.id, asked_at).await?;
        }
        if !stored {
            return Ok(PowerReading {
                state: PowerState::Unknown,
                checked_at: None,
                error: None,
            });
        }
        let asked = self.ask_status(&target).await;
        self.record(node, &target, &asked).await?;
        // The action was done; a status that fails after it is shown, not fatal.
        Ok(asked.unwrap_or_else(|e| PowerReading {
            state: PowerState::Unknown,
            checked_at: Some(crate::db::now()),
            error: Some(e.to_string()),
        }))
    }

    /// Reads every BMC once, `concurrency` at a time; one slow BMC costs
    /// its own timeout, never the others'.
    pub async fn poll_all(&self, concurrency: usize) -> Result<usize, PowerError> {
        let rows = bmcs::pollable(self.orchestrator.db()).await?;
        let count = rows.len();
        futures::stream::iter(rows)
            .for_each_concurrent(concurrency.max(1), |row| async move {
                if let Err(e) = self.check(&Key::Id(row.node_id)).await {
                    tracing::debug!(node_id = row.node_id, error = %e, "power poll failed");
                }
            })
            .await;
        Ok(count)
    }

    /// Enrolment by Redfish: a node defined by its BMC alone takes the
    /// MACs the BMC lists for the system, so the machine's first DHCP
    /// request already names it. A BMC that cannot list them (IPMI, a
    /// failure) leaves enrolment to the discovery image's report.
    async fn learn_macs(&self, node: &Key, target: &mut BmcTarget) {
        if !target.macs.is_empty() || target.driver != DriverKind::Redfish {
            return;
        }
        let Some(driver) = self.drivers.get(target.driver) else {
            return;
        };
        let macs = match driver.macs(target).await {
            Ok(macs) if !macs.is_empty() => macs,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(node = %target.node, error = %e, "the BMC lists no NICs");
                return;
            }
        };
        let db = self.orchestrator.db();
        let added = match nodes::get(db, node).await {
            Ok(row) => nodes::add_macs(db, row.id, &macs).await,
            Err(e) => Err(e),
        };
        match added {
            Ok(0) => {}
            Ok(added) => {
                tracing::info!(node = %target.node, added, macs = ?macs, "enrolled by the NICs its Redfish BMC lists");
                target.macs = macs;
            }
            Err(e) => {
                tracing::warn!(node = %target.node, error = %e, "cannot keep the MACs the BMC lists")
            }
        }
    }

    fn driver(&self, target: &BmcTarget) -> Result<&dyn crate::bmc::PowerControl, BmcError> {
        self.drivers
            .get(target.driver)
            .ok_or_else(|| BmcError::NotConfigured {
                node: target.node.clone(),
            })
    }

    async fn ask_status(&self, target: &BmcTarget) -> Result<PowerReading, BmcError> {
        let state = self.driver(target)?.status(target).await?;
        Ok(PowerReading {
            state,
            checked_at: Some(crate::db::now()),
            error: None,
        })
    }

    /// Stores what the BMC said (a failure as state unknown with its
    /// message) and publishes a change of state after the commit. Nodes
    /// powered by `power.command` alone have no row to store it in.
    async fn record(
        &self,
        node: &Key,
        target: &BmcTarget,
        asked: &Result<PowerReading, BmcError>,
    ) -> Result<(), PowerError> {
        let (state, error) = match asked {
            Ok(reading) => (reading.state, None),
            Err(e) => (PowerState::Unknown, Some(e.to_string())),
        };
        let node = node.clone();
        let name = target.node.clone();
        self.orchestrator
            .transact("Power", move |txn| {
                Box::pin(async move {
                    let id = nodes::get(txn, &node).await?.id;
                    let before =
                        bmcs::record_power(txn, id, state.as_str(), error, crate::db::now())
                            .await?;
                    let from = before.as_deref().and_then(PowerState::parse);
                    let mut effects = Effects::default();
                    if let Some(from) = from.filter(|f| *f != state) {
                        effects
                            .facts
                            .push(Fact::PowerStateChanged(PowerStateChanged {
                                node_id: id,
                                node: name,
                                from,
                                to: state,
                            }));
                    }
                    Ok(((), effects))
                })
            })
            .await?;
        Ok(())
    }
}

/// The os-install reboot: next boot from the network, once, then a power
/// cycle through the node's BMC. A failure is the BMC's message, which the
/// reboot clock puts in the noderole's runlog.
impl PowerCycle for Power {
    fn cycle(
        &self,
        reboot: &PendingReboot,
        _: &Held,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let power = self.clone();
        let node = Key::Id(reboot.node_id);
        Box::pin(async move {
            let target = match power.target(&node).await {
                Ok(target) => target,
                // Nothing powers this machine: it reboots itself.
                Err(PowerError::Bmc(BmcError::NotConfigured { .. })) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            // The power command is only ever asked to cycle.
            let next_boot = (target.driver != DriverKind::Command).then_some(NextBoot::Pxe);
            power
                .perform(&node, PowerAction::Cycle, next_boot)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    /// A node powers through its BMC or the power command; a target that
    /// cannot be read (a fault) counts as powered, so the cycle is tried
    /// and its failure recorded.
    fn powers(&self, node_id: i64) -> LocalBoxFuture<'static, bool> {
        let power = self.clone();
        Box::pin(async move {
            !matches!(
                power.target(&Key::Id(node_id)).await,
                Err(PowerError::Bmc(BmcError::NotConfigured { .. }))
            )
        })
    }
}

/// Reads every BMC's power state every `interval` until kiln stops.
pub async fn poll_forever(power: Power, interval: Duration, concurrency: usize) {
    let shutdown = power.orchestrator.shutdown().clone();
    loop {
        tokio::select! {
            _ = shutdown.stopping() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let polled = tokio::select! {
            _ = shutdown.stopping() => return,
            polled = power.poll_all(concurrency) => polled,
        };
        if let Err(e) = polled {
            tracing::warn!(error = %e, "power poll failed");
        }
    }
}
