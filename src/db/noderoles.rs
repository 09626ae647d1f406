//! Noderoles and the edges between them.

use std::collections::HashSet;

use entity::{node, noderole, noderole_edge, role};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};

use super::{now, RepoError, RepoResult};
use entity::states::{BootenvKind, DeploymentState, NoderoleState, RunState};

/// A noderole with the names of its node, role and deployment: what facts,
/// traces and the API show, fetched in one join.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct NoderoleRef {
    pub id: i64,
    pub node_id: i64,
    pub role_id: i64,
    pub deployment_id: i64,
    pub state: NoderoleState,
    pub run_count: i32,
    pub node: String,
    pub role: String,
    pub deployment: String,
}

const REF_SELECT: &str = "SELECT nr.id, nr.node_id, nr.role_id, nr.deployment_id, nr.state, \
    nr.run_count, n.name AS node, r.name AS role, d.name AS deployment \
    FROM noderole nr JOIN node n ON n.id = nr.node_id JOIN role r ON r.id = nr.role_id \
    JOIN deployment d ON d.id = nr.deployment_id";

/// `?`/`$n` placeholders for `count` values starting at `first`.
pub(crate) fn placeholders(backend: DbBackend, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn id_values(ids: &[i64]) -> Vec<Value> {
    ids.iter().map(|id| Value::from(*id)).collect()
}

/// One noderole.
pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<noderole::Model> {
    noderole::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("noderole", id))
}

/// Named views of the given noderoles, in id order.
pub async fn refs<C: ConnectionTrait>(db: &C, ids: &[i64]) -> RepoResult<Vec<NoderoleRef>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let sql = format!(
            "{REF_SELECT} WHERE nr.id IN ({}) ORDER BY nr.id",
            placeholders(backend, 1, chunk.len())
        );
        out.extend(
            NoderoleRef::find_by_statement(Statement::from_sql_and_values(
                backend,
                sql,
                id_values(chunk),
            ))
            .all(db)
            .await?,
        );
    }
    Ok(out)
}

/// Filters for [`list_refs`].
#[derive(Debug, Clone, Default)]
pub struct NoderoleFilter {
    pub node_id: Option<i64>,
    pub role_id: Option<i64>,
    pub deployment_id: Option<i64>,
    pub state: Option<NoderoleState>,
    pub limit: u64,
    pub offset: u64,
}

/// A filtered page of named noderoles, one query.
pub async fn list_refs<C: ConnectionTrait>(
    db: &C,
    filter: &NoderoleFilter,
) -> RepoResult<Vec<NoderoleRef>> {
    let backend = db.get_database_backend();
    let mut clauses = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut push = |clause: &str, value: Value| {
        values.push(value);
        clauses.push(format!(
            "{clause} = {}",
            placeholders(backend, values.len(), 1)
        ));
    };
    if let Some(v) = filter.node_id {
        push("nr.node_id", v.into());
    }
    if let Some(v) = filter.role_id {
        push("nr.role_id", v.into());
    }
    if let Some(v) = filter.deployment_id {
        push("nr.deployment_id", v.into());
    }
    if let Some(v) = filter.state {
        push("nr.state", v.into());
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "{REF_SELECT}{filter_sql} ORDER BY nr.id LIMIT {} OFFSET {}",
        filter.limit, filter.offset
    );
    Ok(
        NoderoleRef::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?,
    )
}

/// The binding of a role to a node in a deployment, if it exists.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    role_id: i64,
    deployment_id: i64,
) -> RepoResult<Option<noderole::Model>> {
    Ok(noderole::Entity::find()
        .filter(noderole::Column::NodeId.eq(node_id))
        .filter(noderole::Column::RoleId.eq(role_id))
        .filter(noderole::Column::DeploymentId.eq(deployment_id))
        .one(db)
        .await?)
}

/// Noderoles of `role_id` on `node_id`, in any of `deployment_ids`.
pub async fn find_in<C: ConnectionTrait>(
    db: &C,
    role_id: i64,
    node_id: Option<i64>,
    deployment_ids: &[i64],
) -> RepoResult<Vec<noderole::Model>> {
    let mut query = noderole::Entity::find()
        .filter(noderole::Column::RoleId.eq(role_id))
        .filter(noderole::Column::DeploymentId.is_in(deployment_ids.to_vec()));
    if let Some(node_id) = node_id {
        query = query.filter(noderole::Column::NodeId.eq(node_id));
    }
    Ok(query.order_by_asc(noderole::Column::Id).all(db).await?)
}

/// Every noderole of a role (e.g. all DHCP database bindings).
pub async fn of_role<C: ConnectionTrait>(db: &C, role_id: i64) -> RepoResult<Vec<noderole::Model>> {
    Ok(noderole::Entity::find()
        .filter(noderole::Column::RoleId.eq(role_id))
        .order_by_asc(noderole::Column::Id)
        .all(db)
        .await?)
}

/// Ids of a node's noderoles.
pub async fn of_node<C: ConnectionTrait>(db: &C, node_id: i64) -> RepoResult<Vec<noderole::Model>> {
    Ok(noderole::Entity::find()
        .filter(noderole::Column::NodeId.eq(node_id))
        .order_by_asc(noderole::Column::Id)
        .all(db)
        .await?)
}

/// Ids of a deployment's noderoles in `state`.
pub async fn of_deployment_in<C: ConnectionTrait>(
    db: &C,
    deployment_id: i64,
    states: &[NoderoleState],
) -> RepoResult<Vec<noderole::Model>> {
    Ok(noderole::Entity::find()
        .filter(noderole::Column::DeploymentId.eq(deployment_id))
        .filter(noderole::Column::State.is_in(states.iter().copied()))
        .order_by_asc(noderole::Column::Id)
        .all(db)
        .await?)
}

/// Creates a proposed noderole.
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    role_id: i64,
    deployment_id: i64,
    data: serde_json::Value,
) -> RepoResult<noderole::Model> {
    let stamp = now();
    noderole::ActiveModel {
        node_id: Set(node_id),
        role_id: Set(role_id),
        deployment_id: Set(deployment_id),
        state: Set(NoderoleState::Proposed),
        unmet_parents: Set(0),
        run_count: Set(0),
        proposed_data: Set(data),
        committed_data: Set(serde_json::json!({})),
        wall: Set(serde_json::json!({})),
        runlog: Set(String::new()),
        cohort: Set(0),
        created_at: Set(stamp),
        updated_at: Set(stamp),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| RepoError::from_write(e, "noderole", format!("{node_id}/{role_id}")))
}

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

/// Sets the state of the given noderoles.
pub async fn set_state<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
    state: NoderoleState,
) -> RepoResult<()> {
    let backend = db.get_database_backend();
    for chunk in ids.chunks(500) {
        let mut values = vec![Value::from(state), Value::from(now())];
        values.extend(id_values(chunk));
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE noderole SET state = {}, updated_at = {} WHERE id IN ({})",
                placeholders(backend, 1, 1),
                placeholders(backend, 2, 1),
                placeholders(backend, 3, chunk.len())
            ),
            values,
        ))
        .await?;
    }
    Ok(())
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

/// Saves what a run produced.
pub async fn record_run_result<C: ConnectionTrait>(
    db: &C,
    id: i64,
    succeeded: bool,
    wall: Option<serde_json::Value>,
    runlog: &str,
) -> RepoResult<()> {
    let mut update = noderole::Entity::update_many()
        .col_expr(
            noderole::Column::RunCount,
            Expr::col(noderole::Column::RunCount).add(i32::from(succeeded)),
        )
        .col_expr(noderole::Column::Runlog, Expr::value(runlog.to_string()))
        .col_expr(noderole::Column::UpdatedAt, Expr::value(now()));
    if let Some(wall) = wall {
        update = update.col_expr(noderole::Column::Wall, Expr::value(wall));
    }
    let done = update.filter(noderole::Column::Id.eq(id)).exec(db).await?;
    if done.rows_affected == 0 {
        return Err(RepoError::not_found("noderole", id));
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

/// What a starting run reads about itself.
#[derive(Debug, Clone)]
pub struct RunContextRow {
    pub noderole: noderole::Model,
    pub role: role::Model,
    pub node: node::Model,
    pub deployment: String,
    /// The node's first interface's address.
    pub address: Option<String>,
}

/// `alias."col" AS "alias_col"` for every column of `E`, so the row can be
/// read back with `Model::from_query_result(row, "alias_")`.
fn aliased_columns<E: EntityTrait>(alias: &str) -> String {
    E::Column::iter()
        .map(|c| {
            let name = c.as_str();
            format!("{alias}.\"{name}\" AS \"{alias}_{name}\"")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A noderole with its role, node, deployment name and the node's address,
/// in one query: a run holds one of the global slots while it reads them.
pub async fn run_context<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<Option<RunContextRow>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {}, {}, {}, d.name AS deployment_name, \
         (SELECT i.ip FROM interface i WHERE i.node_id = nr.node_id ORDER BY i.id LIMIT 1) AS address \
         FROM noderole nr JOIN role r ON r.id = nr.role_id JOIN node n ON n.id = nr.node_id \
         LEFT JOIN deployment d ON d.id = nr.deployment_id WHERE nr.id = {}",
        aliased_columns::<noderole::Entity>("nr"),
        aliased_columns::<role::Entity>("r"),
        aliased_columns::<node::Entity>("n"),
        placeholders(backend, 1, 1)
    );
    let Some(row) = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(RunContextRow {
        noderole: noderole::Model::from_query_result(&row, "nr_")?,
        role: role::Model::from_query_result(&row, "r_")?,
        node: node::Model::from_query_result(&row, "n_")?,
        deployment: row
            .try_get::<Option<String>>("", "deployment_name")?
            .unwrap_or_default(),
        address: row.try_get("", "address")?,
    }))
}

/// Commits the proposed data of the given noderoles, a few statements for
/// any number of them.
pub async fn commit_proposed_data<C: ConnectionTrait>(db: &C, ids: &[i64]) -> RepoResult<()> {
    for chunk in ids.chunks(500) {
        noderole::Entity::update_many()
            .col_expr(
                noderole::Column::CommittedData,
                Expr::col(noderole::Column::ProposedData),
            )
            .col_expr(noderole::Column::UpdatedAt, Expr::value(now()))
            .filter(noderole::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    Ok(())
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

/// Replaces a noderole's proposed and/or committed data.
pub async fn set_data<C: ConnectionTrait>(
    db: &C,
    id: i64,
    proposed: Option<serde_json::Value>,
    committed: Option<serde_json::Value>,
) -> RepoResult<noderole::Model> {
    let row = get(db, id).await?;
    let mut active: noderole::ActiveModel = row.into();
    if let Some(p) = proposed {
        active.proposed_data = Set(p);
    }
    if let Some(c) = committed {
        active.committed_data = Set(c);
    }
    active.updated_at = Set(now());
    Ok(active.update(db).await?)
}

/// A noderole the annealer may start now.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ReadyNoderole {
    pub id: i64,
    pub node_id: i64,
    pub destructive: bool,
    pub priority: bool,
    pub run_count: i32,
}

/// Up to `limit` todo noderoles with every parent active, on alive and
/// available nodes, in committed deployments: read through the ready index,
/// so its cost follows the ready set, not the whole table.
pub async fn ready<C: ConnectionTrait>(db: &C, limit: u64) -> RepoResult<Vec<ReadyNoderole>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT nr.id, nr.node_id, r.destructive, r.priority, nr.run_count \
         FROM noderole nr JOIN node n ON n.id = nr.node_id \
         JOIN role r ON r.id = nr.role_id JOIN deployment d ON d.id = nr.deployment_id \
         WHERE nr.state = {} AND nr.unmet_parents = 0 AND n.alive = {} AND n.available = {} \
         AND d.state <> {} ORDER BY nr.id LIMIT {limit}",
        placeholders(backend, 1, 1),
        placeholders(backend, 2, 1),
        placeholders(backend, 3, 1),
        placeholders(backend, 4, 1),
    );
    let values = [
        Value::from(NoderoleState::Todo),
        Value::from(true),
        Value::from(true),
        Value::from(DeploymentState::Proposed),
    ];
    Ok(
        ReadyNoderole::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?,
    )
}

/// Counts of noderoles by state.
pub async fn count_by_state<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<(NoderoleState, i64)>> {
    #[derive(FromQueryResult)]
    struct Count {
        state: NoderoleState,
        n: i64,
    }
    let backend = db.get_database_backend();
    Ok(Count::find_by_statement(Statement::from_string(
        backend,
        "SELECT state, COUNT(*) AS n FROM noderole GROUP BY state ORDER BY state",
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|c| (c.state, c.n))
    .collect())
}

/// Noderoles in transition with no queued or running run: left behind by a
/// crash between marking and queueing (cannot happen in one transaction,
/// but a restore from backup can).
pub async fn transition_without_queued_run<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<i64>> {
    #[derive(FromQueryResult)]
    struct Id {
        id: i64,
    }
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT nr.id FROM noderole nr WHERE nr.state = {} AND NOT EXISTS \
         (SELECT 1 FROM run r WHERE r.noderole_id = nr.id AND r.state IN ({}))",
        placeholders(backend, 1, 1),
        placeholders(backend, 2, 2)
    );
    let values = [
        Value::from(NoderoleState::Transition),
        Value::from(RunState::Queued),
        Value::from(RunState::Running),
    ];
    Ok(
        Id::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
    )
}

/// An active noderole on a node that is down and not on its local disk:
/// what a machine in the middle of a reinstall looks like.
#[derive(Debug, Clone, FromQueryResult)]
pub struct AwaitingReturn {
    pub noderole_id: i64,
    pub node_id: i64,
    pub node: String,
    pub wall: serde_json::Value,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Active noderoles of `role` on nodes that are not alive and whose bootenv
/// is not `local` (at start, to re-arm the install watchdog).
pub async fn awaiting_return<C: ConnectionTrait>(
    db: &C,
    role: &str,
) -> RepoResult<Vec<AwaitingReturn>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT nr.id AS noderole_id, nr.node_id, n.name AS node, nr.wall, nr.updated_at \
         FROM noderole nr JOIN node n ON n.id = nr.node_id JOIN role r ON r.id = nr.role_id \
         JOIN bootenv b ON b.name = n.bootenv \
         WHERE nr.state = {} AND n.alive = {} AND b.kind <> {} AND r.name = {} \
         ORDER BY nr.id",
        placeholders(backend, 1, 1),
        placeholders(backend, 2, 1),
        placeholders(backend, 3, 1),
        placeholders(backend, 4, 1),
    );
    let values = [
        Value::from(NoderoleState::Active),
        Value::from(false),
        Value::from(BootenvKind::Local),
        Value::from(role),
    ];
    Ok(
        AwaitingReturn::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?,
    )
}

/// Whether any noderole at all is in `state` (an index seek on
/// `ix_noderole_ready`).
pub async fn any_in_state<C: ConnectionTrait>(db: &C, state: NoderoleState) -> RepoResult<bool> {
    Ok(noderole::Entity::find()
        .filter(noderole::Column::State.eq(state))
        .one(db)
        .await?
        .is_some())
}

/// Which noderoles [`any_of_deployment`] looks for.
#[derive(Debug, Clone, Copy)]
pub enum StateTest {
    In(NoderoleState),
    NotIn(NoderoleState),
}

/// Whether any noderole of the deployment passes `test` (an index seek,
/// whatever the deployment's size).
pub async fn any_of_deployment<C: ConnectionTrait>(
    db: &C,
    deployment_id: i64,
    test: StateTest,
) -> RepoResult<bool> {
    let state = match test {
        StateTest::In(s) => noderole::Column::State.eq(s),
        StateTest::NotIn(s) => noderole::Column::State.ne(s),
    };
    Ok(noderole::Entity::find()
        .filter(noderole::Column::DeploymentId.eq(deployment_id))
        .filter(state)
        .one(db)
        .await?
        .is_some())
}
