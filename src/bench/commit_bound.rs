//! The commit bound: the least database work a run can need — one
//! single-row update transaction to start it and one to finish it — done in
//! a plain loop at the scheduler's concurrency, and nothing else. kiln's
//! annealing rate is quoted as a ratio of this, measured on the same
//! database in the same run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

use super::BenchError;

/// Runs per second a bare loop achieves doing `runs` start/finish pairs
/// with `concurrency` workers, on rows it inserts into a private table.
pub async fn measure(
    db: &DatabaseConnection,
    runs: usize,
    concurrency: usize,
) -> Result<(f64, Duration), BenchError> {
    prepare(db, runs).await?;
    let next = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let db = db.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id > runs {
                    return Ok::<(), sea_orm::DbErr>(());
                }
                update_one(&db, id as i64, "running").await?;
                update_one(&db, id as i64, "succeeded").await?;
            }
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    let elapsed = started.elapsed();
    db.execute_unprepared("DROP TABLE bench_commit_bound")
        .await?;
    Ok((runs as f64 / elapsed.as_secs_f64(), elapsed))
}

async fn prepare(db: &DatabaseConnection, runs: usize) -> Result<(), BenchError> {
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
    txn.commit().await?;
    Ok(())
}

async fn update_one(db: &DatabaseConnection, id: i64, state: &str) -> Result<(), sea_orm::DbErr> {
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
