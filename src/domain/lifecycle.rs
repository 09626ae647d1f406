//! Committing, proposing and retrying: the operator's moves.

use sea_orm::ConnectionTrait;

use super::nodes::update_node;
use super::transitions::{move_to, unblock_descendants};
use super::{DomainError, DomainResult, Effects, NoderoleState};
use crate::db::deployments::{self, DeploymentState};
use crate::db::nodes::{self, NodeChange};
use crate::db::{noderoles, roles, Key};

/// Commits a deployment: its proposed noderoles get their proposed data
/// committed and go to todo (blocked when an ancestor failed).
pub async fn commit_deployment<C: ConnectionTrait>(db: &C, key: &Key) -> DomainResult<Effects> {
    let deployment = deployments::get(db, key).await?;
    deployments::set_state(db, deployment.id, DeploymentState::Committed).await?;
    let proposed =
        noderoles::of_deployment_in(db, deployment.id, &[NoderoleState::Proposed]).await?;
    let ids: Vec<i64> = proposed.iter().map(|n| n.id).collect();
    let mut effects = commit_noderoles(db, &ids).await?;
    effects.wake_annealer = true;
    Ok(effects)
}

/// Commits single noderoles (they must be proposed).
pub async fn commit_noderole<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Effects> {
    let row = noderoles::get(db, id).await?;
    if row.state != NoderoleState::Proposed {
        return Err(DomainError::StateConflict(format!(
            "noderole {id} is {}, only a proposed noderole can be committed",
            row.state
        )));
    }
    let mut effects = commit_noderoles(db, &[id]).await?;
    effects.wake_annealer = true;
    Ok(effects)
}

async fn commit_noderoles<C: ConnectionTrait>(db: &C, ids: &[i64]) -> DomainResult<Effects> {
    // Parents first, children after: the order a finishing run takes its
    // locks in too, so the two never wait on each other in a circle.
    noderoles::lock_parents(db, ids).await?;
    noderoles::commit_proposed_data(db, ids).await?;
    let failed_above = noderoles::with_failed_parent(db, ids).await?;
    let (blocked, todo): (Vec<i64>, Vec<i64>) =
        ids.iter().partition(|id| failed_above.contains(id));
    let mut facts = move_to(db, &todo, NoderoleState::Todo, true).await?;
    facts.extend(move_to(db, &blocked, NoderoleState::Blocked, true).await?);
    Ok(Effects::with_facts(facts))
}

/// Re-proposes a deployment: every noderole not in transition goes back to
/// proposed, so nothing more runs until the next commit.
pub async fn propose_deployment<C: ConnectionTrait>(db: &C, key: &Key) -> DomainResult<Effects> {
    let deployment = deployments::get(db, key).await?;
    deployments::set_state(db, deployment.id, DeploymentState::Proposed).await?;
    let rows = noderoles::of_deployment_in(
        db,
        deployment.id,
        &[
            NoderoleState::Todo,
            NoderoleState::Active,
            NoderoleState::Error,
            NoderoleState::Blocked,
        ],
    )
    .await?;
    let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
    Ok(Effects::with_facts(
        move_to(db, &ids, NoderoleState::Proposed, true).await?,
    ))
}

/// Re-proposes one noderole, optionally with new proposed data.
pub async fn propose_noderole<C: ConnectionTrait>(
    db: &C,
    id: i64,
    data: Option<serde_json::Value>,
) -> DomainResult<Effects> {
    let row = noderoles::get(db, id).await?;
    if row.state == NoderoleState::Transition {
        return Err(DomainError::StateConflict(format!(
            "noderole {id} is in transition; wait for its run to finish"
        )));
    }
    if let Some(data) = &data {
        if !data.is_object() {
            return Err(DomainError::invalid("data", "must be a JSON object"));
        }
    }
    noderoles::set_data(db, id, data, None).await?;
    Ok(Effects::with_facts(
        move_to(db, &[id], NoderoleState::Proposed, true).await?,
    ))
}

/// Retries a noderole in error: it goes to todo and its blocked
/// descendants follow once nothing above them has failed. A destructive
/// one whose machine never came back starts over (see
/// [`start_over_unreturned`]).
pub async fn retry_noderole<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Effects> {
    let row = noderoles::get(db, id).await?;
    if row.state != NoderoleState::Error {
        return Err(DomainError::StateConflict(format!(
            "noderole {id} is {}, only a noderole in error can be retried",
            row.state
        )));
    }
    if row.unmet_parents > 0 {
        return Err(DomainError::StateConflict(format!(
            "noderole {id} has parents that are not active"
        )));
    }
    let mut effects = start_over_unreturned(db, &row).await?;
    effects
        .facts
        .extend(move_to(db, &[id], NoderoleState::Todo, true).await?);
    effects.facts.extend(unblock_descendants(db, id).await?);
    effects.wake_annealer = true;
    Ok(effects)
}

/// A destructive noderole in error after a success failed because its
/// machine never came back (the install watchdog): its retry starts over.
/// Its jig runs again (scheduling the reboot again) instead of being
/// marked done, and its node, down since that reboot, is marked alive so
/// the annealer works on it; the role's hook takes it down again for the
/// new reboot.
async fn start_over_unreturned<C: ConnectionTrait>(
    db: &C,
    row: &entity::noderole::Model,
) -> DomainResult<Effects> {
    if row.run_count == 0 || !roles::get(db, &Key::Id(row.role_id)).await?.destructive {
        return Ok(Effects::default());
    }
    noderoles::forget_successes(db, row.id).await?;
    let node = nodes::get(db, &Key::Id(row.node_id)).await?;
    if node.alive {
        return Ok(Effects::default());
    }
    let change = NodeChange {
        alive: Some(true),
        keeps_alive_since: true,
        ..Default::default()
    };
    let (_, effects) = update_node(db, &Key::Id(node.id), &change).await?;
    Ok(effects)
}
