//! Queries written for one caller each: the annealer's ready set, what a
//! starting run reads, the crash-recovery and watchdog scans, and the
//! counts and existence checks behind `/health`, deployments and the
//! annealer's status.

use entity::{node, noderole, role};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Statement, Value,
};

use crate::db::sql::{aliased_columns, placeholders};
use crate::db::RepoResult;
use entity::states::{BootenvKind, DeploymentState, NoderoleState, RunState};

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

/// Why todo noderoles wait, counted: a noderole waiting for several
/// reasons counts under each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult)]
pub struct WaitingCounts {
    pub todo: i64,
    pub node_not_alive: i64,
    pub node_not_available: i64,
    pub parents_not_active: i64,
    pub deployment_not_committed: i64,
    /// Todo with none of the reasons: the annealer's next work.
    pub ready: i64,
}

/// The reasons todo noderoles are not started, in one grouped query over
/// the ready index's columns (what [`ready`] requires, negated).
pub async fn waiting_counts<C: ConnectionTrait>(db: &C) -> RepoResult<WaitingCounts> {
    let backend = db.get_database_backend();
    let count = |condition: &str, name: &str| {
        format!("COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0) AS {name}")
    };
    let sql = format!(
        "SELECT COUNT(*) AS todo, {}, {}, {}, {}, {} \
         FROM noderole nr JOIN node n ON n.id = nr.node_id \
         JOIN deployment d ON d.id = nr.deployment_id WHERE nr.state = {}",
        count(
            &format!("n.alive = {}", placeholders(backend, 1, 1)),
            "node_not_alive"
        ),
        count(
            &format!("n.available = {}", placeholders(backend, 2, 1)),
            "node_not_available"
        ),
        count("nr.unmet_parents > 0", "parents_not_active"),
        count(
            &format!("d.state = {}", placeholders(backend, 3, 1)),
            "deployment_not_committed"
        ),
        count(
            &format!(
                "n.alive = {} AND n.available = {} AND nr.unmet_parents = 0 AND d.state <> {}",
                placeholders(backend, 4, 1),
                placeholders(backend, 5, 1),
                placeholders(backend, 6, 1)
            ),
            "ready"
        ),
        placeholders(backend, 7, 1),
    );
    let values = [
        Value::from(false),
        Value::from(false),
        Value::from(DeploymentState::Proposed),
        Value::from(true),
        Value::from(true),
        Value::from(DeploymentState::Proposed),
        Value::from(NoderoleState::Todo),
    ];
    Ok(
        WaitingCounts::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .one(db)
            .await?
            .unwrap_or_default(),
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
