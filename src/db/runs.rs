//! Runs: every job ever queued. The queue lives here, so a restart loses
//! nothing.

use entity::run;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use super::{now, RepoError, RepoResult};
use entity::states::RunState;

/// A run to insert.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub noderole_id: i64,
    pub node_id: i64,
    pub reason: String,
    pub priority: bool,
    pub queue_seq: i64,
}

/// Inserts queued runs; returns them with their ids, in queue order. One
/// statement per 500 runs, as an annealer pass may queue hundreds.
pub async fn insert_queued<C: ConnectionTrait>(
    db: &C,
    new: &[NewRun],
) -> RepoResult<Vec<run::Model>> {
    let stamp = now();
    let mut out = Vec::with_capacity(new.len());
    for chunk in new.chunks(500) {
        let rows = chunk.iter().map(|r| run::ActiveModel {
            noderole_id: Set(r.noderole_id),
            node_id: Set(r.node_id),
            reason: Set(r.reason.clone()),
            state: Set(RunState::Queued),
            priority: Set(r.priority),
            queue_seq: Set(r.queue_seq),
            queued_at: Set(stamp),
            ..Default::default()
        });
        out.extend(
            run::Entity::insert_many(rows)
                .exec_with_returning(db)
                .await?,
        );
    }
    // RETURNING promises no order; the queue's order is queue_seq.
    out.sort_by_key(|r| r.queue_seq);
    Ok(out)
}

/// One run.
pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<run::Model> {
    run::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("run", id))
}

/// The queued run of a noderole, if one has not started yet.
pub async fn queued_of_noderole<C: ConnectionTrait>(
    db: &C,
    noderole_id: i64,
) -> RepoResult<Option<run::Model>> {
    Ok(run::Entity::find()
        .filter(run::Column::NoderoleId.eq(noderole_id))
        .filter(run::Column::State.eq(RunState::Queued))
        .one(db)
        .await?)
}

/// A node's queued runs in queue order (how a NodeActor rebuilds its FIFO).
pub async fn queued_of_node<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
) -> RepoResult<Vec<run::Model>> {
    Ok(run::Entity::find()
        .filter(run::Column::NodeId.eq(node_id))
        .filter(run::Column::State.eq(RunState::Queued))
        .order_by_desc(run::Column::Priority)
        .order_by_asc(run::Column::QueueSeq)
        .all(db)
        .await?)
}

/// Every queued run in queue order, for start-up.
pub async fn all_queued<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<run::Model>> {
    Ok(run::Entity::find()
        .filter(run::Column::State.eq(RunState::Queued))
        .order_by_asc(run::Column::QueueSeq)
        .all(db)
        .await?)
}

/// Marks a queued run running and returns it; `None` when it was not
/// queued any more. One statement (`RETURNING`), as runs start often.
/// How many runs are queued or running.
pub async fn count_unfinished<C: ConnectionTrait>(db: &C) -> RepoResult<u64> {
    Ok(run::Entity::find()
        .filter(run::Column::State.is_in([RunState::Queued, RunState::Running]))
        .count(db)
        .await?)
}

pub async fn mark_running<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<Option<run::Model>> {
    Ok(run::Entity::update_many()
        .col_expr(run::Column::State, RunState::Running.into())
        .col_expr(run::Column::StartedAt, now().into())
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::State.eq(RunState::Queued))
        .exec_with_returning(db)
        .await?
        .pop())
}

/// Records how a run ended and returns it.
pub async fn finish<C: ConnectionTrait>(
    db: &C,
    id: i64,
    state: RunState,
    error: Option<String>,
) -> RepoResult<run::Model> {
    run::Entity::update_many()
        .col_expr(run::Column::State, state.into())
        .col_expr(run::Column::FinishedAt, now().into())
        .col_expr(run::Column::Error, error.into())
        .filter(run::Column::Id.eq(id))
        .exec_with_returning(db)
        .await?
        .pop()
        .ok_or_else(|| RepoError::not_found("run", id))
}

/// Runs left `running` by a crash go back to `queued`; returns how many.
pub async fn requeue_interrupted<C: ConnectionTrait>(db: &C) -> RepoResult<u64> {
    let result = run::Entity::update_many()
        .col_expr(run::Column::State, RunState::Queued.into())
        .col_expr(
            run::Column::StartedAt,
            Option::<chrono::DateTime<chrono::Utc>>::None.into(),
        )
        .filter(run::Column::State.eq(RunState::Running))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The highest queue sequence number used so far.
pub async fn max_queue_seq<C: ConnectionTrait>(db: &C) -> RepoResult<i64> {
    #[derive(FromQueryResult)]
    struct Max {
        m: Option<i64>,
    }
    let backend = db.get_database_backend();
    Ok(Max::find_by_statement(Statement::from_string(
        backend,
        "SELECT MAX(queue_seq) AS m FROM run",
    ))
    .one(db)
    .await?
    .and_then(|m| m.m)
    .unwrap_or(0))
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub node_id: Option<i64>,
    pub noderole_id: Option<i64>,
    pub state: Option<RunState>,
    pub limit: u64,
    pub offset: u64,
}

/// Runs, newest first.
pub async fn list<C: ConnectionTrait>(db: &C, filter: &RunFilter) -> RepoResult<Vec<run::Model>> {
    let mut query = run::Entity::find().order_by_desc(run::Column::Id);
    if let Some(v) = filter.node_id {
        query = query.filter(run::Column::NodeId.eq(v));
    }
    if let Some(v) = filter.noderole_id {
        query = query.filter(run::Column::NoderoleId.eq(v));
    }
    if let Some(v) = filter.state {
        query = query.filter(run::Column::State.eq(v));
    }
    Ok(query
        .limit(filter.limit)
        .offset(filter.offset)
        .all(db)
        .await?)
}
