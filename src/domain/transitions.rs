//! Moving noderoles between states while keeping `unmet_parents` true:
//! the one place a noderole's state column is written.

use std::collections::HashMap;

use sea_orm::ConnectionTrait;

use super::facts::{Fact, NoderoleStateChanged};
use super::{DomainResult, NoderoleState};
use crate::db::noderoles;

/// Moves the given noderoles to `to`; returns a fact per real change.
/// `hooks` is false for moves that must not fire role hooks.
pub async fn move_to<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
    to: NoderoleState,
    hooks: bool,
) -> DomainResult<Vec<Fact>> {
    let refs = noderoles::refs(db, ids).await?;
    let moving: Vec<_> = refs.into_iter().filter(|r| r.state != to).collect();
    if moving.is_empty() {
        return Ok(Vec::new());
    }
    let moving_ids: Vec<i64> = moving.iter().map(|r| r.id).collect();
    noderoles::set_state(db, &moving_ids, to).await?;
    let leaving_active: Vec<i64> = moving
        .iter()
        .filter(|r| r.state == NoderoleState::Active)
        .map(|r| r.id)
        .collect();
    if to == NoderoleState::Active {
        noderoles::adjust_unmet_parents(db, &moving_ids, -1).await?;
    } else if !leaving_active.is_empty() {
        noderoles::adjust_unmet_parents(db, &leaving_active, 1).await?;
    }
    Ok(moving
        .into_iter()
        .map(|r| {
            Fact::NoderoleStateChanged(NoderoleStateChanged {
                noderole_id: r.id,
                node_id: r.node_id,
                from: r.state,
                to,
                node: r.node,
                role: r.role,
                hooks,
            })
        })
        .collect())
}

/// Ends the transition of a noderole whose run finished: state and the
/// run's output in one write, then the children's counts. Returns the fact
/// and whether anything is blocked anywhere, or `None` when the noderole
/// was not in transition (the caller then takes the general path).
pub async fn leave_transition<C: ConnectionTrait>(
    db: &C,
    id: i64,
    to: NoderoleState,
    output: &RunOutput<'_>,
) -> DomainResult<Option<(Fact, bool)>> {
    let Some(moved) = noderoles::finish_transition(
        db,
        id,
        to,
        output.succeeded,
        output.wall.clone(),
        output.runlog,
    )
    .await?
    else {
        return Ok(None);
    };
    if to == NoderoleState::Active {
        noderoles::adjust_unmet_parents(db, &[id], -1).await?;
    }
    let fact = Fact::NoderoleStateChanged(NoderoleStateChanged {
        noderole_id: moved.id,
        node_id: moved.node_id,
        from: NoderoleState::Transition,
        to,
        node: moved.node,
        role: moved.role,
        hooks: true,
    });
    Ok(Some((fact, moved.blocked_somewhere)))
}

/// What a finished run leaves on its noderole.
#[derive(Debug, Clone)]
pub struct RunOutput<'a> {
    pub succeeded: bool,
    pub wall: Option<serde_json::Value>,
    pub runlog: &'a str,
}

/// An error blocks every descendant that is waiting (todo); only them.
pub async fn block_descendants<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Vec<Fact>> {
    let waiting: Vec<i64> = noderoles::descendants(db, id)
        .await?
        .into_iter()
        .filter(|d| d.state == NoderoleState::Todo)
        .map(|d| d.id)
        .collect();
    move_to(db, &waiting, NoderoleState::Blocked, true).await
}

/// Whether any parent of `id` is in error or blocked.
pub async fn has_failed_parent<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<bool> {
    let parents = noderoles::parents(db, id).await?;
    Ok(noderoles::refs(db, &parents)
        .await?
        .iter()
        .any(|p| matches!(p.state, NoderoleState::Error | NoderoleState::Blocked)))
}

/// After a retry, blocked descendants whose parents are no longer failed go
/// back to todo, level by level.
pub async fn unblock_descendants<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Vec<Fact>> {
    // Nearly every run finishes with nothing blocked anywhere; one index
    // seek spares it the walk over its whole subgraph.
    if !noderoles::any_in_state(db, NoderoleState::Blocked).await? {
        return Ok(Vec::new());
    }
    walk_to_unblock(db, id).await
}

/// The walk of [`unblock_descendants`], for a caller that knows something
/// is blocked: breadth first over the descendants read in one query, a
/// blocked one goes back to todo when no parent is in error or blocked, as
/// the walk has left them so far (a child it unblocked no longer holds
/// back its own children).
pub async fn walk_to_unblock<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Vec<Fact>> {
    let descendants = noderoles::descendants(db, id).await?;
    let mut state: HashMap<i64, NoderoleState> = HashMap::new();
    for d in &descendants {
        state.extend(d.parents.iter().copied());
    }
    state.extend(descendants.iter().map(|d| (d.id, d.state)));
    let failed = |s: Option<&NoderoleState>| {
        matches!(s, Some(NoderoleState::Error | NoderoleState::Blocked))
    };
    let mut unblocked = Vec::new();
    for d in &descendants {
        let held_back = d.parents.iter().any(|(p, _)| failed(state.get(p)));
        if d.state == NoderoleState::Blocked && !held_back {
            state.insert(d.id, NoderoleState::Todo);
            unblocked.push(d.id);
        }
    }
    let mut facts = move_to(db, &unblocked, NoderoleState::Todo, true).await?;
    // Facts in the walk's order, as when each moved on its own.
    let position: HashMap<i64, usize> = unblocked
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    facts.sort_by_key(|f| match f {
        Fact::NoderoleStateChanged(c) => position.get(&c.noderole_id).copied(),
        _ => None,
    });
    Ok(facts)
}
