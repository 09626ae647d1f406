//! Starting and finishing runs: the only way out of transition.

use sea_orm::ConnectionTrait;

use super::facts::{Fact, RunFinished};
use super::transitions::{
    block_descendants, leave_transition, move_to, unblock_descendants, walk_to_unblock, RunOutput,
};
use super::{DomainResult, Effects, NoderoleState, RunState};
use crate::db::reboots::{self, NewReboot};
use crate::db::{noderoles, runs};

/// Marks a queued run running and its noderole in transition (a
/// hook-queued re-run of an active noderole enters transition here).
/// `None` when the run was no longer queued (cancelled or already taken).
pub async fn start_run<C: ConnectionTrait>(db: &C, run_id: i64) -> DomainResult<Option<Effects>> {
    let Some(run) = runs::mark_running(db, run_id).await? else {
        return Ok(None);
    };
    let facts = move_to(db, &[run.noderole_id], NoderoleState::Transition, true).await?;
    Ok(Some(Effects::with_facts(facts)))
}

/// Starts a run the annealer queued: it moved the noderole to transition
/// when it queued the run, and only the run's end moves it again, so
/// starting it is one statement on the run. `None` when it was no longer
/// queued.
pub async fn start_annealed_run<C: ConnectionTrait>(
    db: &C,
    run_id: i64,
) -> DomainResult<Option<Effects>> {
    Ok(runs::mark_running(db, run_id)
        .await?
        .map(|_| Effects::default()))
}

/// What a jig reported.
#[derive(Debug, Clone, Default)]
pub struct JigResult {
    pub succeeded: bool,
    pub wall: Option<serde_json::Value>,
    pub runlog: String,
    pub error: Option<String>,
    /// What the run made true beyond its own result (a reboot it
    /// scheduled: recorded with the result), published once the result
    /// committed.
    pub facts: Vec<Fact>,
}

impl JigResult {
    /// A run that failed for `reason`, which is also its runlog's last line.
    pub fn failed(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            succeeded: false,
            runlog: format!("{reason}\n"),
            error: Some(reason),
            ..Default::default()
        }
    }
}

/// Records a finished run: the noderole goes active (or error, blocking its
/// waiting descendants), the reboots its jig scheduled are written as rows
/// (so a crash before they are due loses none), and the annealer is woken.
/// The jig's facts come first in the effects, then the run's own.
pub async fn finish_run<C: ConnectionTrait>(
    db: &C,
    run_id: i64,
    result: &JigResult,
) -> DomainResult<Effects> {
    let state = if result.succeeded {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    let run = runs::finish(db, run_id, state, result.error.clone()).await?;
    record_reboots(db, run_id, &result.facts).await?;
    let to = if result.succeeded {
        NoderoleState::Active
    } else {
        NoderoleState::Error
    };
    let output = RunOutput {
        succeeded: result.succeeded,
        wall: result.wall.clone(),
        runlog: &result.runlog,
    };
    // `None` when something may be blocked but nobody asked yet.
    let (mut facts, blocked_somewhere) =
        match leave_transition(db, run.noderole_id, to, &output).await? {
            Some((fact, blocked_somewhere)) => (vec![fact], Some(blocked_somewhere)),
            None => {
                noderoles::record_run_result(
                    db,
                    run.noderole_id,
                    result.succeeded,
                    result.wall.clone(),
                    &result.runlog,
                )
                .await?;
                (move_to(db, &[run.noderole_id], to, true).await?, None)
            }
        };
    let named = facts.iter().find_map(|f| match f {
        Fact::NoderoleStateChanged(c) if c.noderole_id == run.noderole_id => {
            Some((c.node_id, c.node.clone(), c.role.clone()))
        }
        _ => None,
    });
    // Blocked descendants whose parents are all fine again may go on.
    if result.succeeded {
        match blocked_somewhere {
            Some(false) => {}
            Some(true) => facts.extend(walk_to_unblock(db, run.noderole_id).await?),
            None => facts.extend(unblock_descendants(db, run.noderole_id).await?),
        }
    } else {
        facts.extend(block_descendants(db, run.noderole_id).await?);
    }
    // The move named the noderole already; ask the database only when it
    // did not move (a re-run that ends where it started).
    let named = match named {
        Some(named) => Some(named),
        None => noderoles::refs(db, &[run.noderole_id])
            .await?
            .pop()
            .map(|nr| (nr.node_id, nr.node, nr.role)),
    };
    if let Some((node_id, node, role)) = named {
        facts.push(Fact::RunFinished(RunFinished {
            run_id,
            noderole_id: run.noderole_id,
            node_id,
            node,
            role,
            succeeded: result.succeeded,
        }));
    }
    let mut all = result.facts.clone();
    all.append(&mut facts);
    Ok(Effects {
        facts: all,
        runs: Vec::new(),
        wake_annealer: true,
    })
}

/// Writes a row for each reboot a run's jig scheduled, due its delay from
/// now: whatever powers the machines performs it from there.
async fn record_reboots<C: ConnectionTrait>(
    db: &C,
    run_id: i64,
    jig_facts: &[Fact],
) -> DomainResult<()> {
    for fact in jig_facts {
        let Fact::RebootScheduled(reboot) = fact else {
            continue;
        };
        let delay = chrono::Duration::milliseconds(reboot.delay_ms.min(i64::MAX as u64) as i64);
        reboots::schedule(
            db,
            &NewReboot {
                node_id: reboot.node_id,
                noderole_id: reboot.noderole_id,
                due_at: crate::db::now() + delay,
                reason: format!("scheduled by run {run_id}"),
            },
        )
        .await?;
    }
    Ok(())
}

/// A machine never came back from the reboot an active noderole scheduled:
/// the noderole goes to error with `reason` added to its runlog, and its
/// waiting descendants are blocked, as if its run had failed.
pub async fn fail_unreturned<C: ConnectionTrait>(
    db: &C,
    noderole_id: i64,
    reason: &str,
) -> DomainResult<Effects> {
    let row = noderoles::get(db, noderole_id).await?;
    let runlog = format!("{}{reason}", row.runlog);
    noderoles::record_run_result(db, noderole_id, false, None, &runlog).await?;
    let mut facts = move_to(db, &[noderole_id], NoderoleState::Error, true).await?;
    facts.extend(block_descendants(db, noderole_id).await?);
    Ok(Effects {
        facts,
        runs: Vec::new(),
        wake_annealer: true,
    })
}
