//! One annealer pass, and runs that hooks queue directly.

use std::sync::atomic::{AtomicI64, Ordering};

use sea_orm::ConnectionTrait;

use super::transitions::move_to;
use super::{DomainResult, Effects, NoderoleState};
use crate::db::noderoles;
use crate::db::runs::{self, NewRun};

/// The reason recorded on the runs the annealer queues. Their noderoles
/// entered transition in the same transaction, unlike a hook's re-runs,
/// whose noderoles enter it only when the run starts.
pub const ANNEAL_REASON: &str = "anneal";

/// Whether the annealer queued this run (its noderole is in transition
/// already).
pub fn queued_by_annealer(run: &entity::run::Model) -> bool {
    run.reason == ANNEAL_REASON
}

/// Whether the annealer still has work, from counts of noderoles by state:
/// anything todo or in transition. What `/api/v2/anneal` calls not settled.
pub fn work_remains(counts: &[(NoderoleState, i64)]) -> bool {
    counts.iter().any(|(state, n)| {
        matches!(state, NoderoleState::Todo | NoderoleState::Transition) && *n > 0
    })
}

/// Hands out queue sequence numbers; the run table's order is the queue's.
#[derive(Debug, Default)]
pub struct QueueSeq(AtomicI64);

impl QueueSeq {
    pub fn starting_after(last: i64) -> Self {
        Self(AtomicI64::new(last))
    }

    pub fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Moves up to `limit` ready noderoles to transition and queues their runs.
/// Destructive roles that already succeeded are marked active without a run
/// and without hooks. Returns effects and whether the limit was reached
/// (more may be ready).
pub async fn pass<C: ConnectionTrait>(
    db: &C,
    limit: u64,
    seq: &QueueSeq,
) -> DomainResult<(Effects, bool)> {
    let ready = noderoles::ready(db, limit).await?;
    let full = ready.len() as u64 == limit;
    let (skip, run): (Vec<_>, Vec<_>) = ready
        .into_iter()
        .partition(|r| r.destructive && r.run_count > 0);
    let skip_ids: Vec<i64> = skip.iter().map(|r| r.id).collect();
    let mut facts = move_to(db, &skip_ids, NoderoleState::Active, false).await?;
    let run_ids: Vec<i64> = run.iter().map(|r| r.id).collect();
    facts.extend(move_to(db, &run_ids, NoderoleState::Transition, true).await?);
    let new_runs: Vec<NewRun> = run
        .iter()
        .map(|r| NewRun {
            noderole_id: r.id,
            node_id: r.node_id,
            reason: ANNEAL_REASON.into(),
            priority: false,
            queue_seq: seq.next(),
        })
        .collect();
    let queued = runs::insert_queued(db, &new_runs).await?;
    Ok((
        Effects {
            facts,
            runs: queued,
            wake_annealer: !skip_ids.is_empty(),
        },
        full,
    ))
}

/// Queues a hook-requested re-run of a noderole, joining a run of it that
/// is still queued and not started. The noderole enters transition when
/// the run starts.
pub async fn queue_hook_run<C: ConnectionTrait>(
    db: &C,
    noderole_id: i64,
    reason: &str,
    priority: bool,
    seq: &QueueSeq,
) -> DomainResult<Effects> {
    if runs::queued_of_noderole(db, noderole_id).await?.is_some() {
        return Ok(Effects::default());
    }
    let nr = noderoles::get(db, noderole_id).await?;
    // Active: re-run it. In transition (running now): queue one more so
    // the change is picked up after it. Anything else is not settled, and
    // the annealer will run it with the new data anyway.
    let settled_or_running = matches!(nr.state, NoderoleState::Active | NoderoleState::Transition);
    if !settled_or_running {
        return Ok(Effects::default());
    }
    let queued = runs::insert_queued(
        db,
        &[NewRun {
            noderole_id,
            node_id: nr.node_id,
            reason: reason.to_string(),
            priority,
            queue_seq: seq.next(),
        }],
    )
    .await?;
    Ok(Effects {
        facts: Vec::new(),
        runs: queued,
        wake_annealer: false,
    })
}
