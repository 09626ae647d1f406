//! `kiln bench scale`: the anneal benchmark at growing cluster sizes. A
//! transition should cost the same in a cluster of 10,000 nodes as in one
//! of 100: nothing in the hot path may scan the whole deployment.

use super::anneal::{kiln_anneal, AnnealParams};
use super::{scratch::Scratch, BenchError, Report, Row};

/// Time per transition at each size, on a fresh database each.
pub async fn run(params: &AnnealParams, sizes: &[usize]) -> Result<Report, BenchError> {
    if sizes.len() < 2 {
        return Err(BenchError::Setup("scale needs at least two sizes".into()));
    }
    let mut rows = Vec::new();
    let mut per_transition = Vec::new();
    let mut scratches = Vec::new();
    for &nodes in sizes {
        let sized = AnnealParams {
            nodes,
            ..params.clone()
        };
        let scratch = Scratch::create(params.backend, &params.postgres_server, 20).await?;
        let result = kiln_anneal(&scratch, &sized).await;
        // Each size's orchestrator lives on, idle, until the process ends;
        // its database must outlive it.
        scratches.push(scratch);
        let elapsed = match result {
            Ok(timing) => timing.elapsed,
            Err(e) => {
                remove_all(scratches).await;
                return Err(e);
            }
        };
        let transitions = nodes * params.roles;
        let micros = elapsed.as_secs_f64() * 1e6 / transitions as f64;
        per_transition.push(micros);
        rows.push(
            Row::new(format!("{nodes} nodes"))
                .with("transitions", transitions)
                .with("seconds", format!("{:.2}", elapsed.as_secs_f64()))
                .with("us/transition", format!("{micros:.0}")),
        );
    }
    remove_all(scratches).await;
    let smallest = per_transition[0];
    let largest = per_transition[per_transition.len() - 1];
    Ok(Report {
        name: "scale".into(),
        rows,
        ratio: largest / smallest,
        target: "<=1.3".into(),
        notes: vec![format!(
            "{} chained noop roles per node, cap {}, {:?}; ratio = time per transition at the largest size / at the smallest",
            params.roles, params.cap, params.backend
        )],
    })
}

async fn remove_all(scratches: Vec<Scratch>) {
    for scratch in scratches {
        scratch.remove().await;
    }
}
