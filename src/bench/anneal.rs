//! `kiln bench anneal`: N nodes × R roles in a chain, noop jig, the global
//! cap, against the commit bound measured on the same database in the same
//! run.

use std::time::{Duration, Instant};

use sea_orm::TransactionTrait;

use super::{commit_bound, fleet, scratch::Scratch, BenchError, Report, Row};
use crate::db::roles::{self, JigKind, RoleSpec};
use crate::db::{deployments, noderoles, Backend, Key};
use crate::domain::NoderoleState;
use crate::orchestrator::{Orchestrator, OrchestratorOptions};

/// What to measure.
#[derive(Debug, Clone)]
pub struct AnnealParams {
    pub nodes: usize,
    pub roles: usize,
    pub cap: usize,
    pub backend: Backend,
    pub postgres_server: String,
}

/// Completions per second of kiln and of the bare loop, on one database.
pub async fn run(params: &AnnealParams) -> Result<Report, BenchError> {
    let scratch = Scratch::create(params.backend, &params.postgres_server, 20).await?;
    let result = measure(&scratch, params).await;
    scratch.remove().await;
    let (kiln, bound_rate, bound_time) = result?;
    let kiln_time = kiln.elapsed;
    let transitions = params.nodes * params.roles;
    let kiln_rate = transitions as f64 / kiln_time.as_secs_f64();
    let ratio = kiln_rate / bound_rate;
    Ok(Report {
        name: "anneal".into(),
        rows: vec![
            Row::new("kiln")
                .with("runs", transitions)
                .with("seconds", format!("{:.2}", kiln_time.as_secs_f64()))
                .with("runs/s", format!("{kiln_rate:.1}"))
                .with("passes", kiln.passes),
            Row::new("commit bound")
                .with("runs", transitions)
                .with("seconds", format!("{:.2}", bound_time.as_secs_f64()))
                .with("runs/s", format!("{bound_rate:.1}"))
                .with("passes", "-"),
        ],
        ratio,
        target: ">=0.5".into(),
        notes: vec![format!(
            "{} nodes x {} chained noop roles, cap {}, {:?}",
            params.nodes, params.roles, params.cap, params.backend
        )],
    })
}

async fn measure(
    scratch: &Scratch,
    params: &AnnealParams,
) -> Result<(AnnealTiming, f64, Duration), BenchError> {
    let kiln = kiln_anneal(scratch, params).await?;
    let transitions = params.nodes * params.roles;
    let (bound_rate, bound_time) =
        commit_bound::measure(&scratch.db, transitions, params.cap).await?;
    Ok((kiln, bound_rate, bound_time))
}

/// Builds the cluster on `scratch`, then times kiln from the commit until
/// every noderole is active.
pub async fn kiln_anneal(
    scratch: &Scratch,
    params: &AnnealParams,
) -> Result<AnnealTiming, BenchError> {
    build_cluster(scratch, params).await?;
    let options = OrchestratorOptions {
        max_concurrent_runs: params.cap,
        scripts_dir: ".".into(),
        script_timeout: Duration::from_secs(60),
        trace_capacity: 0,
        builtins: Vec::new(),
        shutdown: Default::default(),
    };
    let orchestrator = Orchestrator::start(scratch.db.clone(), options)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let transitions = (params.nodes * params.roles) as i64;
    let started = Instant::now();
    orchestrator
        .commit_deployment(&Key::Name("bench".into()))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    // Poll kiln's own counters, not the database, so the waiting loop
    // takes no database time from what is measured; confirm from the
    // table once they say every run finished.
    loop {
        let done = orchestrator.counters();
        if done.failed_total > 0 {
            return Err(BenchError::Setup(format!(
                "{} runs failed",
                done.failed_total
            )));
        }
        if done.succeeded_total as i64 >= transitions && all_active(scratch, transitions).await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let annealer = orchestrator
        .annealer_status()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    orchestrator.stop().await;
    Ok(AnnealTiming {
        elapsed,
        passes: annealer.passes,
    })
}

/// How long kiln took, and in how many annealer passes.
#[derive(Debug, Clone, Copy)]
pub struct AnnealTiming {
    pub elapsed: Duration,
    pub passes: u64,
}

async fn all_active(scratch: &Scratch, transitions: i64) -> Result<bool, BenchError> {
    let counts = noderoles::count_by_state(&scratch.db)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(counts
        .iter()
        .any(|(s, n)| *s == NoderoleState::Active && *n >= transitions))
}

/// Roles r0 <- r1 <- ... (implicit, so each node chains on itself), nodes,
/// and a proposed deployment binding the last role on every node.
async fn build_cluster(scratch: &Scratch, params: &AnnealParams) -> Result<(), BenchError> {
    let db = &scratch.db;
    let setup = |e: crate::domain::DomainError| BenchError::Setup(e.to_string());
    let txn = db.begin().await?;
    for i in 0..params.roles {
        let parent = format!("r{}", i.saturating_sub(1));
        let requires: &[&str] = if i == 0 { &[] } else { &[parent.as_str()] };
        let mut spec = RoleSpec::new(&format!("r{i}"), JigKind::Noop, requires);
        spec.implicit = true;
        roles::upsert(&txn, &spec)
            .await
            .map_err(|e| setup(e.into()))?;
    }
    deployments::create(&txn, "bench", None, "")
        .await
        .map_err(|e| setup(e.into()))?;
    let last_role = format!("r{}", params.roles - 1);
    fleet::add_nodes(&txn, params.nodes, Some((&last_role, "bench"))).await?;
    txn.commit().await?;
    Ok(())
}
