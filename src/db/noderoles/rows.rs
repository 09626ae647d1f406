//! Noderole rows: reading, creating and updating them one noderole (or one
//! list of ids) at a time, and the named view facts and the API show.

use entity::noderole;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, Set, Statement, Value,
};

use crate::db::sql::{id_values, placeholders};
use crate::db::{now, RepoError, RepoResult};
use entity::states::NoderoleState;

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

/// The first noderole (lowest id) of `role_id` on `node_id`, in any
/// deployment.
pub async fn on_node<C: ConnectionTrait>(
    db: &C,
    role_id: i64,
    node_id: i64,
) -> RepoResult<Option<noderole::Model>> {
    Ok(noderole::Entity::find()
        .filter(noderole::Column::RoleId.eq(role_id))
        .filter(noderole::Column::NodeId.eq(node_id))
        .order_by_asc(noderole::Column::Id)
        .one(db)
        .await?)
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

/// Forgets a noderole's successful runs, so a destructive role runs its
/// jig again (a retried install whose machine never came back).
pub async fn forget_successes<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<()> {
    let done = noderole::Entity::update_many()
        .col_expr(noderole::Column::RunCount, Expr::value(0))
        .col_expr(noderole::Column::UpdatedAt, Expr::value(now()))
        .filter(noderole::Column::Id.eq(id))
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(RepoError::not_found("noderole", id));
    }
    Ok(())
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
