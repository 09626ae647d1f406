//! The benchmarks' own SQL, kept here so that SQL stays in `db/`: scratch
//! databases, the commit bound's private table, the API benchmark's JSON
//! pages and the seed benchmark's progress checks. Errors stay `DbErr`s: a
//! benchmark reports them as they are.

use chrono::{DateTime, Utc};
use entity::run;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    Statement, TransactionTrait, Value,
};

use super::sql::placeholders;
use entity::states::BootenvKind;

/// Creates the scratch database `name` through a connection to its server.
pub async fn create_database(admin: &DatabaseConnection, name: &str) -> Result<(), DbErr> {
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(())
}

/// Drops the scratch database `name`, closing its connections.
pub async fn drop_database(admin: &DatabaseConnection, name: &str) -> Result<(), DbErr> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Creates the commit bound's private table with `runs` queued rows.
pub async fn create_commit_bound_table(db: &DatabaseConnection, runs: usize) -> Result<(), DbErr> {
    db.execute_unprepared("DROP TABLE IF EXISTS bench_commit_bound")
        .await?;
    db.execute_unprepared(
        "CREATE TABLE bench_commit_bound (id BIGINT PRIMARY KEY, state VARCHAR NOT NULL, \
         started_at VARCHAR, finished_at VARCHAR)",
    )
    .await?;
    let txn = db.begin().await?;
    for chunk in (1..=runs).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk.iter().map(|id| format!("({id}, 'queued')")).collect();
        txn.execute_unprepared(&format!(
            "INSERT INTO bench_commit_bound (id, state) VALUES {}",
            values.join(",")
        ))
        .await?;
    }
    txn.commit().await
}

/// Drops the commit bound's private table.
pub async fn drop_commit_bound_table(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("DROP TABLE bench_commit_bound")
        .await?;
    Ok(())
}

/// One single-row update transaction on the commit bound's table.
pub async fn commit_bound_update(
    db: &DatabaseConnection,
    id: i64,
    state: &str,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE bench_commit_bound SET state = $1, finished_at = $2 WHERE id = $3"
        }
        _ => "UPDATE bench_commit_bound SET state = ?, finished_at = ? WHERE id = ?",
    };
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            Value::from(state),
            Value::from(chrono::Utc::now().to_rfc3339()),
            Value::from(id),
        ],
    ))
    .await?;
    txn.commit().await
}

/// A page of nodes with their interfaces as one JSON text the database
/// builds itself: the least work any server could do for that page.
pub async fn nodes_page_as_json(
    db: &DatabaseConnection,
    limit: i64,
    offset: i64,
) -> Result<Option<String>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => POSTGRES_PAGE,
        _ => SQLITE_PAGE,
    };
    let Some(row) = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [limit.into(), offset.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(row.try_get("", "page")?))
}

const POSTGRES_PAGE: &str = r#"
SELECT coalesce(json_agg(row_to_json(p) ORDER BY p.id), '[]')::text AS page FROM (
  SELECT n.id, n.name, n.admin, n.alive, n.available, n.bootenv, n.target_os,
         n.deployment_id, n.description, n.created_at, n.updated_at,
         coalesce((SELECT json_agg(row_to_json(i) ORDER BY i.id) FROM interface i
                   WHERE i.node_id = n.id), '[]') AS interfaces
  FROM node n ORDER BY n.id LIMIT $1 OFFSET $2) p"#;

const SQLITE_PAGE: &str = r#"
SELECT coalesce(json_group_array(json(p.j)), '[]') AS page FROM (
  SELECT json_object('id', n.id, 'name', n.name, 'admin', json(CASE WHEN n.admin THEN 'true' ELSE 'false' END),
         'alive', json(CASE WHEN n.alive THEN 'true' ELSE 'false' END),
         'available', json(CASE WHEN n.available THEN 'true' ELSE 'false' END),
         'bootenv', n.bootenv, 'target_os', n.target_os, 'deployment_id', n.deployment_id,
         'description', n.description, 'created_at', n.created_at, 'updated_at', n.updated_at,
         'interfaces', (SELECT coalesce(json_group_array(json_object('id', i.id, 'node_id', i.node_id,
                 'mac', i.mac, 'ip', i.ip, 'hostname', i.hostname)), '[]')
                 FROM interface i WHERE i.node_id = n.id)) AS j
  FROM node n ORDER BY n.id LIMIT ? OFFSET ?) p"#;

/// How many nodes are not yet alive on their own disk: down, or on a
/// bootenv whose kind is not `local`.
pub async fn nodes_not_alive_on_disk(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT COUNT(*) AS n FROM node n LEFT JOIN bootenv b ON b.name = n.bootenv \
         WHERE n.alive = {} OR b.kind IS NULL OR b.kind <> {}",
        placeholders(backend, 1, 1),
        placeholders(backend, 2, 1),
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(false), Value::from(BootenvKind::Local)],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("COUNT(*) returned no row".into()))?;
    Ok(row.try_get::<i64>("", "n")?.max(0) as u64)
}

/// Every run queued at or after `since`.
pub async fn runs_queued_since(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> Result<Vec<run::Model>, DbErr> {
    run::Entity::find()
        .filter(run::Column::QueuedAt.gte(since))
        .all(db)
        .await
}
