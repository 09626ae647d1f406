//! The commit bound: the least database work a run can need — one
//! single-row update transaction to start it and one to finish it — done in
//! a plain loop at the scheduler's concurrency, and nothing else. kiln's
//! annealing rate is quoted as a ratio of this, measured on the same
//! database in the same run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use super::BenchError;
use crate::db::bench::{commit_bound_update, create_commit_bound_table, drop_commit_bound_table};

/// Runs per second a bare loop achieves doing `runs` start/finish pairs
/// with `concurrency` workers, on rows it inserts into a private table.
pub async fn measure(
    db: &DatabaseConnection,
    runs: usize,
    concurrency: usize,
) -> Result<(f64, Duration), BenchError> {
    create_commit_bound_table(db, runs).await?;
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
                commit_bound_update(&db, id as i64, "running").await?;
                commit_bound_update(&db, id as i64, "succeeded").await?;
            }
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    let elapsed = started.elapsed();
    drop_commit_bound_table(db).await?;
    Ok((runs as f64 / elapsed.as_secs_f64(), elapsed))
}
