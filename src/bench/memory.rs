//! `kiln bench memory`: what an idle node costs. Every node kiln manages
//! has a supervised actor, so a 10,000-node site keeps 10,000 of them; the
//! process's own resident size before and after they start says what each
//! one adds.

use std::time::Duration;

use sea_orm::TransactionTrait;

use super::{fleet, scratch::Scratch, BenchError, Report, Row};
use crate::db::Backend;
use crate::orchestrator::{Orchestrator, OrchestratorOptions};

/// Resident KiB added per idle NodeActor with `nodes` nodes.
pub async fn run(
    nodes: usize,
    backend: Backend,
    postgres_server: &str,
) -> Result<Report, BenchError> {
    let empty = Scratch::create(backend, postgres_server, 5).await?;
    let full = Scratch::create(backend, postgres_server, 5).await?;
    let result = measure(&empty, &full, nodes).await;
    empty.remove().await;
    full.remove().await;
    let (before, after, actors) = result?;
    let per_node = (after.saturating_sub(before)) as f64 / nodes.max(1) as f64;
    Ok(Report {
        name: "memory".into(),
        rows: vec![
            Row::new("kiln, no nodes").with("resident KiB", before),
            Row::new(format!("kiln, {nodes} nodes"))
                .with("resident KiB", after)
                .with("node actors", actors),
            Row::new("per node").with("resident KiB", format!("{per_node:.2}")),
        ],
        ratio: per_node / 10.0,
        target: "<=1.0".into(),
        notes: vec![format!(
            "VmRSS of this process after an orchestrator on an empty {backend:?} database started, then after one on {nodes} nodes did; ratio = KiB per node / 10"
        )],
    })
}

async fn measure(
    empty: &Scratch,
    full: &Scratch,
    nodes: usize,
) -> Result<(u64, u64, usize), BenchError> {
    let txn = full.db.begin().await?;
    fleet::add_nodes(&txn, nodes, None).await?;
    txn.commit().await?;
    // The fixed costs (actor system, pools, the first queries) come first,
    // so the second start adds only what grows with the nodes.
    let _baseline = start(empty).await?;
    let before = settled_resident_kib().await?;
    let loaded = start(full).await?;
    let after = settled_resident_kib().await?;
    let count = loaded.node_actor_count();
    loaded.stop().await;
    Ok((before, after, count))
}

async fn start(scratch: &Scratch) -> Result<Orchestrator, BenchError> {
    let options = OrchestratorOptions {
        max_concurrent_runs: 10,
        scripts_dir: ".".into(),
        script_timeout: Duration::from_secs(60),
        trace_capacity: 0,
        builtins: Vec::new(),
        shutdown: Default::default(),
    };
    Orchestrator::start(scratch.db.clone(), options)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))
}

/// VmRSS once started actors have settled and freed memory went back.
async fn settled_resident_kib() -> Result<u64, BenchError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    release_free_memory();
    resident_kib()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// The process's resident set, from `/proc/self/status`.
fn resident_kib() -> Result<u64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::Setup(format!("/proc/self/status: {e}")))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| BenchError::Setup("no VmRSS in /proc/self/status".into()))
}
