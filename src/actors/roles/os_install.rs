//! provisioner-os-install's `on_active`: the node boots its installer next
//! and is not alive until it comes back, so the annealer leaves it alone.
//! Only the run that really installed does this — never a destructive
//! re-mark, and never when the node already boots from disk.

use std::sync::Arc;

use actix::prelude::*;
use sea_orm::TransactionTrait;

use crate::actors::runtime::Runtime;
use crate::db::nodes::NodeChange;
use crate::db::{bootenvs, noderoles, nodes, Key, RepoError};
use crate::domain::facts::NoderoleStateChanged;
use crate::domain::nodes::update_node;
use crate::domain::{DomainError, Fact, NoderoleState};
use crate::jigs::BUILTIN_OS_INSTALL;

/// The OS installed when neither the noderole nor the node names one.
pub const DEFAULT_TARGET_OS: &str = "ubuntu-24.04";

pub struct OsInstallRole {
    rt: Arc<Runtime>,
}

impl OsInstallRole {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

impl Actor for OsInstallRole {
    type Context = Context<Self>;
}

impl Handler<Fact> for OsInstallRole {
    type Result = ();

    fn handle(&mut self, fact: Fact, ctx: &mut Self::Context) {
        let Fact::NoderoleStateChanged(changed) = fact else {
            return;
        };
        if changed.role != BUILTIN_OS_INSTALL
            || changed.to != NoderoleState::Active
            || !changed.hooks
        {
            return;
        }
        let rt = self.rt.clone();
        rt.trace.record(
            "EventBus",
            "OsInstallRole",
            "NoderoleStateChanged",
            &changed.node,
            "on_active",
        );
        ctx.wait(
            async move {
                if let Err(e) = on_active(&rt, &changed).await {
                    tracing::error!(error = %e, node = %changed.node, "os-install on_active failed");
                }
            }
            .into_actor(self),
        );
    }
}

async fn on_active(rt: &Arc<Runtime>, changed: &NoderoleStateChanged) -> Result<(), DomainError> {
    let txn = rt.db.begin().await.map_err(RepoError::from)?;
    let nr = noderoles::get(&txn, changed.noderole_id).await?;
    let node = nodes::get(&txn, &Key::Id(changed.node_id)).await?;
    if nr.run_count != 1 || bootenvs::boots_from_disk(&txn, &node.bootenv).await? {
        return Ok(());
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
    let (_, effects) = update_node(&txn, &Key::Id(node.id), &change).await?;
    txn.commit().await.map_err(RepoError::from)?;
    rt.apply("OsInstallRole", effects).await;
    Ok(())
}
