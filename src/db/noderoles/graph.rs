//! The dependency graph between noderoles: edges, the `unmet_parents`
//! counts kept from them, the locks that order a parent's change before its
//! children's, and walks over parents and descendants.

use std::collections::{HashMap, HashSet};

use entity::{noderole, noderole_edge};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, Set, Statement, Value,
};

use crate::db::sql::{id_values, placeholders};
use crate::db::{now, RepoError, RepoResult};
use entity::states::NoderoleState;

/// Records that `child` waits on `parent`, counting it as unmet unless the
/// parent is active now.
///
/// The parent's state is read again under a share lock, after the edge is
/// written: a run moving the parent in the meantime either committed first
/// (and its state is what we read) or waits for this transaction and then
/// sees the edge when it adjusts the children's counts. Reading the state
/// earlier, without the lock, let a parent go active unseen on PostgreSQL
/// and left the child waiting for it forever.
pub async fn add_edge<C: ConnectionTrait>(
    db: &C,
    parent: &noderole::Model,
    child_id: i64,
) -> RepoResult<()> {
    noderole_edge::ActiveModel {
        parent_id: Set(parent.id),
        child_id: Set(child_id),
    }
    .insert(db)
    .await
    .map_err(|e| RepoError::from_write(e, "noderole_edge", format!("{}->{child_id}", parent.id)))?;
    let state = noderole::Entity::find_by_id(parent.id)
        .lock_shared()
        .one(db)
        .await?
        .map_or(parent.state, |p| p.state);
    if state != NoderoleState::Active {
        let backend = db.get_database_backend();
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE noderole SET unmet_parents = unmet_parents + 1 WHERE id = {}",
                placeholders(backend, 1, 1)
            ),
            [child_id.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Parent ids of a noderole.
pub async fn parents<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<Vec<i64>> {
    Ok(noderole_edge::Entity::find()
        .filter(noderole_edge::Column::ChildId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .map(|e| e.parent_id)
        .collect())
}

/// Child ids of the given noderoles.
pub async fn children<C: ConnectionTrait>(db: &C, ids: &[i64]) -> RepoResult<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<i64> = noderole_edge::Entity::find()
        .filter(noderole_edge::Column::ParentId.is_in(ids.to_vec()))
        .all(db)
        .await?
        .into_iter()
        .map(|e| e.child_id)
        .collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Whether `target` is reachable from `start` by following child edges.
pub async fn reaches<C: ConnectionTrait>(db: &C, start: i64, target: i64) -> RepoResult<bool> {
    let mut frontier = vec![start];
    let mut seen = std::collections::HashSet::new();
    while !frontier.is_empty() {
        if frontier.contains(&target) {
            return Ok(true);
        }
        frontier.retain(|id| seen.insert(*id));
        frontier = children(db, &frontier).await?;
    }
    Ok(false)
}

/// Recounts every noderole's `unmet_parents` from the edges (at start, so a
/// count that drifted can never leave a noderole waiting forever).
pub async fn recount_unmet_parents<C: ConnectionTrait>(db: &C) -> RepoResult<u64> {
    let backend = db.get_database_backend();
    let unmet = |p| {
        format!(
            "(SELECT COUNT(*) FROM noderole_edge e JOIN noderole p ON p.id = e.parent_id \
             WHERE e.child_id = noderole.id AND p.state <> {})",
            placeholders(backend, p, 1)
        )
    };
    let sql = format!(
        "UPDATE noderole SET unmet_parents = {} WHERE unmet_parents <> {}",
        unmet(1),
        unmet(2)
    );
    let active = Value::from(NoderoleState::Active);
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [active.clone(), active],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Adds `delta` to `unmet_parents` of every child of `parents`, once per
/// edge (a child of two of them changes by two).
pub async fn adjust_unmet_parents<C: ConnectionTrait>(
    db: &C,
    parents: &[i64],
    delta: i32,
) -> RepoResult<()> {
    let backend = db.get_database_backend();
    for chunk in parents.chunks(400) {
        let list_a = placeholders(backend, 2, chunk.len());
        let list_b = placeholders(backend, 2 + chunk.len(), chunk.len());
        let mut values = vec![Value::from(delta)];
        values.extend(id_values(chunk));
        values.extend(id_values(chunk));
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE noderole SET unmet_parents = unmet_parents + {} * \
                 (SELECT COUNT(*) FROM noderole_edge e WHERE e.child_id = noderole.id \
                  AND e.parent_id IN ({list_a})) \
                 WHERE id IN (SELECT child_id FROM noderole_edge WHERE parent_id IN ({list_b}))",
                placeholders(backend, 1, 1)
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// A noderole whose transition [`finish_transition`] ended.
#[derive(Debug, Clone, FromQueryResult)]
pub struct FinishedTransition {
    pub id: i64,
    pub node_id: i64,
    pub node: String,
    pub role: String,
    /// Whether any noderole at all is blocked (then a success may unblock
    /// some of its descendants).
    pub blocked_somewhere: bool,
}

/// Ends a noderole's transition: its new state and what its run produced,
/// written in one statement that also returns its names for the facts and
/// whether anything is blocked. `None` when it was not in transition.
pub async fn finish_transition<C: ConnectionTrait>(
    db: &C,
    id: i64,
    to: NoderoleState,
    succeeded: bool,
    wall: Option<serde_json::Value>,
    runlog: &str,
) -> RepoResult<Option<FinishedTransition>> {
    let backend = db.get_database_backend();
    let mut values = vec![
        Value::from(to),
        Value::from(now()),
        Value::from(i32::from(succeeded)),
        Value::from(runlog.to_string()),
        Value::from(id),
        Value::from(NoderoleState::Transition),
        Value::from(NoderoleState::Blocked),
    ];
    let wall_sql = match wall {
        Some(wall) => {
            values.push(Value::from(wall));
            format!(", wall = {}", placeholders(backend, 8, 1))
        }
        None => String::new(),
    };
    let p = |i| placeholders(backend, i, 1);
    let sql = format!(
        "UPDATE noderole SET state = {}, updated_at = {}, run_count = run_count + {}, \
         runlog = {}{wall_sql} WHERE id = {} AND state = {} \
         RETURNING id, node_id, \
         (SELECT name FROM node WHERE node.id = noderole.node_id) AS node, \
         (SELECT name FROM role WHERE role.id = noderole.role_id) AS role, \
         EXISTS (SELECT 1 FROM noderole b WHERE b.state = {}) AS blocked_somewhere",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7)
    );
    Ok(
        FinishedTransition::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .one(db)
            .await?,
    )
}

/// Takes a share lock on every parent of `ids` (PostgreSQL; SQLite's one
/// connection serialises writers anyway), in id order. Committing children
/// takes it before writing them: a run ending in error on one of those
/// parents either committed first (and [`with_failed_parent`] sees the
/// error) or waits, and then finds the children todo and blocks them.
/// Without it each side could miss the other's change and leave a child
/// todo under a failed parent.
pub async fn lock_parents<C: ConnectionTrait>(db: &C, ids: &[i64]) -> RepoResult<()> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        return Ok(());
    }
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT p.id FROM noderole p WHERE p.id IN \
             (SELECT e.parent_id FROM noderole_edge e WHERE e.child_id IN ({})) \
             ORDER BY p.id FOR SHARE",
            placeholders(backend, 1, chunk.len())
        );
        db.query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            id_values(chunk),
        ))
        .await?;
    }
    Ok(())
}

/// Those of `ids` with a parent in error or blocked.
pub async fn with_failed_parent<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> RepoResult<HashSet<i64>> {
    let backend = db.get_database_backend();
    let mut out = HashSet::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT DISTINCT e.child_id AS id FROM noderole_edge e \
             JOIN noderole p ON p.id = e.parent_id \
             WHERE p.state IN ({}) AND e.child_id IN ({})",
            placeholders(backend, 1, 2),
            placeholders(backend, 3, chunk.len())
        );
        let mut values = vec![
            Value::from(NoderoleState::Error),
            Value::from(NoderoleState::Blocked),
        ];
        values.extend(id_values(chunk));
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for row in rows {
            out.insert(row.try_get::<i64>("", "id")?);
        }
    }
    Ok(out)
}

/// A descendant of a noderole as [`descendants`] read it: its state and
/// every parent's, from one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Descendant {
    pub id: i64,
    pub state: NoderoleState,
    /// Every parent (ids ascending) with its state.
    pub parents: Vec<(i64, NoderoleState)>,
}

/// Every descendant of `id`, each once, in breadth-first order (nearest
/// first, by id within a distance), with its state and its parents' states:
/// one recursive query.
pub async fn descendants<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<Vec<Descendant>> {
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
        state: NoderoleState,
        parent_id: i64,
        parent_state: NoderoleState,
    }
    let backend = db.get_database_backend();
    // UNION (not UNION ALL) keeps each descendant once, however many paths
    // lead to it.
    let sql = format!(
        "WITH RECURSIVE descendant(id) AS ( \
           SELECT e.child_id FROM noderole_edge e WHERE e.parent_id = {} \
           UNION \
           SELECT e.child_id FROM noderole_edge e JOIN descendant d ON e.parent_id = d.id) \
         SELECT c.id, c.state, p.id AS parent_id, p.state AS parent_state \
         FROM descendant d JOIN noderole c ON c.id = d.id \
         JOIN noderole_edge e ON e.child_id = c.id JOIN noderole p ON p.id = e.parent_id \
         ORDER BY c.id, p.id",
        placeholders(backend, 1, 1)
    );
    let rows = Row::find_by_statement(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .all(db)
        .await?;
    let mut found: HashMap<i64, Descendant> = HashMap::new();
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in rows {
        found
            .entry(row.id)
            .or_insert_with(|| Descendant {
                id: row.id,
                state: row.state,
                parents: Vec::new(),
            })
            .parents
            .push((row.parent_id, row.parent_state));
        children.entry(row.parent_id).or_default().push(row.id);
    }
    // Breadth first from `id`, as a walk one level per query would go.
    let mut seen = HashSet::new();
    let mut order = Vec::with_capacity(found.len());
    let mut frontier = vec![id];
    while !frontier.is_empty() {
        let mut next: Vec<i64> = frontier
            .iter()
            .filter_map(|p| children.get(p))
            .flatten()
            .copied()
            .collect();
        next.sort_unstable();
        next.dedup();
        next.retain(|c| seen.insert(*c));
        order.extend(next.iter().filter_map(|c| found.remove(c)));
        frontier = next;
    }
    Ok(order)
}
