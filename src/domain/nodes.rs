//! Node lifecycle: registration (with discovery roles) and the changes
//! that drive the seed flow (bootenv, alive).

use sea_orm::ConnectionTrait;

use super::binding::{bind, BindRequest};
use super::enrolment::follow_reported_bmc;
use super::facts::{BootenvChanged, Fact, InventoryReceived, NodeAliveChanged, NodeCreated};
use super::lifecycle::commit_noderole;
use super::transitions::{has_failed_parent, move_to};
use super::{DomainResult, Effects, NoderoleState};
use crate::db::inventory::{self, NewInventory};
use crate::db::nodes::{self, NewNode, NodeChange, NodeView};
use crate::db::{bootenvs, noderoles, roles, Key, RepoError};

/// Registers a node; a non-admin node gets every `discovery` role bound in
/// `system` and committed. Returns the node, its one-time token, and effects.
pub async fn create_node<C>(db: &C, new: NewNode) -> DomainResult<(NodeView, String, Effects)>
where
    C: ConnectionTrait + sea_orm::TransactionTrait,
{
    let admin = new.admin;
    let (view, token) = nodes::create(db, new).await?;
    let mut effects = Effects::with_facts(vec![Fact::NodeCreated(NodeCreated {
        node_id: view.node.id,
        node: view.node.name.clone(),
    })]);
    if !admin {
        for role in roles::discovery(db).await? {
            let bound = bind(
                db,
                &BindRequest {
                    node: Key::Id(view.node.id),
                    role: Key::Id(role.id),
                    deployment: Key::Name("system".into()),
                    data: None,
                },
            )
            .await;
            match bound {
                Ok(nr) => effects.merge(commit_noderole(db, nr.id).await?),
                // Already bound as another discovery role's requirement.
                Err(super::DomainError::Repo(RepoError::Duplicate { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        // Requirements bound along the way are proposed too: commit them.
        for nr in noderoles::of_node(db, view.node.id).await? {
            if nr.state == NoderoleState::Proposed {
                effects.merge(commit_noderole(db, nr.id).await?);
            }
        }
    }
    Ok((view, token, effects))
}

/// Applies a change to a node and works out what follows: facts for the
/// bootenv and alive changes, and, when a node comes back alive, its
/// noderoles back to todo so the annealer re-runs them.
pub async fn update_node<C: ConnectionTrait>(
    db: &C,
    key: &Key,
    change: &NodeChange,
) -> DomainResult<(entity::node::Model, Effects)> {
    if let Some(bootenv) = &change.bootenv {
        bootenvs::get(db, bootenv).await.map_err(|_| {
            super::DomainError::invalid("bootenv", format!("bootenv `{bootenv}` not found"))
        })?;
    }
    let (before, after) = nodes::update(db, key, change).await?;
    let mut effects = Effects::default();
    if before.bootenv != after.bootenv {
        effects.facts.push(Fact::BootenvChanged(BootenvChanged {
            node_id: after.id,
            node: after.name.clone(),
            from: before.bootenv.clone(),
            to: after.bootenv.clone(),
        }));
    }
    effects.merge(liveness_effects(db, &before, &after).await?);
    if before.available != after.available {
        effects.wake_annealer = true;
    }
    Ok((after, effects))
}

/// What a node's `alive` going from `before` to `after` sets off: the
/// fact, and, when it came back alive, its noderoles back to todo so the
/// annealer re-runs them (a node enrolled by its BMC comes alive this way
/// too).
pub(super) async fn liveness_effects<C: ConnectionTrait>(
    db: &C,
    before: &entity::node::Model,
    after: &entity::node::Model,
) -> DomainResult<Effects> {
    let mut effects = Effects::default();
    if before.alive == after.alive {
        return Ok(effects);
    }
    effects.facts.push(Fact::NodeAliveChanged(NodeAliveChanged {
        node_id: after.id,
        node: after.name.clone(),
        alive: after.alive,
    }));
    if after.alive {
        effects.merge(requeue_node(db, after.id).await?);
    }
    effects.wake_annealer = true;
    Ok(effects)
}

/// Keeps the inventory a machine reported for the node `key` (replacing
/// the one before) and announces it, so an inventory role waiting for it
/// finishes. A BMC address in the report is followed first
/// (`enrolment`): the report may belong to the node defined by that BMC.
/// `document` has been checked by the caller.
pub async fn record_inventory<C: ConnectionTrait>(
    db: &C,
    key: &Key,
    document: serde_json::Value,
    memory_mib: i64,
    disk_count: i32,
) -> DomainResult<(ReportedInventory, Effects)> {
    let reporter = nodes::get(db, key).await?;
    let reported_bmc = document["bmc"]["address"].as_str().unwrap_or_default();
    let followed = follow_reported_bmc(db, reporter, reported_bmc).await?;
    let node = followed.node;
    let stored = inventory::store(
        db,
        &NewInventory {
            node_id: node.id,
            document,
            memory_mib,
            disk_count,
        },
    )
    .await?;
    let mut effects = followed.effects;
    effects
        .facts
        .push(Fact::InventoryReceived(InventoryReceived {
            node_id: node.id,
            node: node.name.clone(),
        }));
    let reported = ReportedInventory {
        stored,
        node: node.name,
        absorbed: followed.absorbed,
    };
    Ok((reported, effects))
}

/// A stored report and the node it was kept on.
pub struct ReportedInventory {
    pub stored: entity::node_inventory::Model,
    /// The name of the node it is kept on (another than the reporter's
    /// when the machine was enrolled into the node defined by its BMC).
    pub node: String,
    /// The reporter's node id when it was absorbed (and deleted).
    pub absorbed: Option<i64>,
}

/// A node back from a reboot: its settled noderoles go to todo again
/// (blocked where something above failed).
async fn requeue_node<C: ConnectionTrait>(db: &C, node_id: i64) -> DomainResult<Effects> {
    let mut todo = Vec::new();
    let mut blocked = Vec::new();
    for nr in noderoles::of_node(db, node_id).await? {
        if !matches!(
            nr.state,
            NoderoleState::Active | NoderoleState::Blocked | NoderoleState::Todo
        ) {
            continue;
        }
        if has_failed_parent(db, nr.id).await? {
            blocked.push(nr.id);
        } else {
            todo.push(nr.id);
        }
    }
    let mut facts = move_to(db, &todo, NoderoleState::Todo, true).await?;
    facts.extend(move_to(db, &blocked, NoderoleState::Blocked, true).await?);
    Ok(Effects {
        facts,
        runs: Vec::new(),
        wake_annealer: true,
    })
}
