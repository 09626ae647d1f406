//! Fixtures for orchestration tests: roles, nodes, waiting for the cluster
//! to settle, and the run table read back as intervals.

use std::time::Duration;

use kiln::db::nodes::{NewInterface, NewNode};
use kiln::db::roles::{JigKind, RoleSpec};
use kiln::db::{roles, runs, Key};
use kiln::domain::{NoderoleState, RunState};
use kiln::orchestrator::Orchestrator;
use sea_orm::DatabaseConnection;

/// A role spec with defaults for tests.
pub fn role(name: &str, jig: JigKind, requires: &[&str]) -> RoleSpec {
    RoleSpec::new(name, jig, requires)
}

/// Creates or updates roles.
pub async fn define_roles(db: &DatabaseConnection, specs: &[RoleSpec]) {
    for spec in specs {
        roles::upsert(db, spec).await.expect("role upsert");
    }
}

/// An alive, available node with one interface, through the orchestrator.
pub async fn add_node(orch: &Orchestrator, name: &str, index: u32, admin: bool) -> i64 {
    let (view, _) = orch
        .create_node(NewNode {
            name: name.into(),
            admin,
            alive: true,
            available: true,
            bootenv: "sledgehammer".into(),
            interfaces: vec![NewInterface {
                mac: format!("52:54:00:00:{:02x}:{:02x}", index / 256, index % 256),
                ip: Some(format!("10.99.{}.{}", index / 250, 1 + index % 250)),
                hostname: None,
            }],
            ..Default::default()
        })
        .await
        .expect("create node");
    view.node.id
}

/// Waits until kiln has settled (`Orchestrator::settled`: nothing todo or
/// in transition, no run queued or running, no fact on its way to a hook);
/// returns the counts by state. Panics after `timeout`, with the counts.
pub async fn settle(orch: &Orchestrator, timeout: Duration) -> Vec<(NoderoleState, i64)> {
    match tokio::time::timeout(timeout, orch.settled()).await {
        Ok(status) => status.expect("anneal status").counts,
        Err(_) => {
            let status = orch.anneal_status().await.expect("anneal status");
            panic!("cluster did not settle in {timeout:?}: {status:?}");
        }
    }
}

/// Count of noderoles in `state`.
pub fn count(counts: &[(NoderoleState, i64)], state: NoderoleState) -> i64 {
    counts
        .iter()
        .find(|(s, _)| *s == state)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// A run as an interval, with names.
#[derive(Debug, Clone)]
pub struct Interval {
    pub run_id: i64,
    pub noderole_id: i64,
    pub node_id: i64,
    pub state: RunState,
    pub started: chrono::DateTime<chrono::Utc>,
    pub finished: chrono::DateTime<chrono::Utc>,
}

/// Every run that started, from the run table.
pub async fn intervals(db: &DatabaseConnection) -> Vec<Interval> {
    runs::list(
        db,
        &runs::RunFilter {
            limit: 1_000_000,
            ..Default::default()
        },
    )
    .await
    .expect("runs")
    .into_iter()
    .filter_map(|r| {
        Some(Interval {
            run_id: r.id,
            noderole_id: r.noderole_id,
            node_id: r.node_id,
            state: r.state,
            started: r.started_at?,
            finished: r.finished_at?,
        })
    })
    .collect()
}

/// The largest number of runs that overlapped in time.
pub fn max_overlap(runs: &[Interval]) -> usize {
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, i32)> = Vec::new();
    for r in runs {
        events.push((r.started, 1));
        events.push((r.finished, -1));
    }
    // Ends sort before starts at the same instant.
    events.sort_by_key(|(t, d)| (*t, *d));
    let mut now = 0i32;
    let mut max = 0i32;
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// Binds `role` on each node in `deployment`.
pub async fn bind_all(orch: &Orchestrator, deployment: &str, role: &str, nodes: &[&str]) {
    for node in nodes {
        orch.bind(kiln::domain::binding::BindRequest {
            node: Key::Name(node.to_string()),
            role: Key::Name(role.to_string()),
            deployment: Key::Name(deployment.to_string()),
            data: None,
        })
        .await
        .expect("bind");
    }
}

/// The trace as a story, per node in causal order, for the given nodes.
pub fn story(orch: &Orchestrator, nodes: &[&str]) -> String {
    let by_node = orch.trace().by_node();
    let mut out = String::new();
    for node in nodes {
        out.push_str(&format!("{node}:\n"));
        for line in by_node.get(*node).cloned().unwrap_or_default() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
