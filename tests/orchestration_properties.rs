//! Property test on both databases: random role graphs on several nodes with
//! random delays and failures. From the run table: never more than the cap
//! at once, never two runs on one node at once, no child started before its
//! parents finished, and every noderole ends as its ancestors dictate.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::orchestration::*;
use common::spawn_app_with;
use entity::noderole_edge;
use kiln::db::roles::JigKind;
use kiln::db::{deployments, noderoles, Key, RepoError};
use kiln::domain::binding::BindRequest;
use kiln::domain::{DomainError, NoderoleState};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sea_orm::EntityTrait;

#[derive(Debug, Clone)]
struct Case {
    cap: usize,
    nodes: usize,
    /// Per role: (parents among earlier roles, fails, delay ms).
    roles: Vec<(Vec<usize>, bool, u64)>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..=4, 2usize..=5, 2usize..=5).prop_flat_map(|(cap, nodes, role_count)| {
        let roles = (0..role_count)
            .map(|i| {
                (
                    proptest::collection::vec(0..i.max(1), 0..=i.min(2)),
                    proptest::bool::weighted(0.2),
                    0u64..30,
                )
                    .prop_map(move |(mut parents, fails, delay)| {
                        parents.retain(|p| *p < i);
                        parents.sort_unstable();
                        parents.dedup();
                        (parents, fails, delay)
                    })
            })
            .collect::<Vec<_>>();
        (Just(cap), Just(nodes), roles).prop_map(|(cap, nodes, roles)| Case { cap, nodes, roles })
    })
}

async fn check(backend: kiln::db::Backend, case: Case) {
    let app = spawn_app_with(backend, |s| s.scheduler.max_concurrent_runs = case.cap).await;
    let orch = &app.state.orchestrator;
    let specs: Vec<_> = case
        .roles
        .iter()
        .enumerate()
        .map(|(i, (parents, fails, delay))| {
            let names: Vec<String> = parents.iter().map(|p| format!("r{p}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut spec = role(&format!("r{i}"), JigKind::Test, &refs);
            spec.implicit = true;
            spec.data = serde_json::json!({ "test": { "fail": fails, "delay_ms": delay } });
            spec
        })
        .collect();
    define_roles(&app.db, &specs).await;
    for n in 0..case.nodes {
        add_node(orch, &format!("p{n}.lab.example"), n as u32 + 1, false).await;
    }
    deployments::create(&app.db, "prop", None, "")
        .await
        .unwrap();
    for n in 0..case.nodes {
        for r in (0..case.roles.len()).rev() {
            let result = orch
                .bind(BindRequest {
                    node: Key::Name(format!("p{n}.lab.example")),
                    role: Key::Name(format!("r{r}")),
                    deployment: Key::Name("prop".into()),
                    data: None,
                })
                .await;
            match result {
                Ok(_) | Err(DomainError::Repo(RepoError::Duplicate { .. })) => {}
                Err(e) => panic!("bind failed: {e}"),
            }
        }
    }
    orch.commit_deployment(&Key::Name("prop".into()))
        .await
        .unwrap();
    settle(&app.state.orchestrator, Duration::from_secs(120)).await;

    let runs = intervals(&app.db).await;
    assert!(max_overlap(&runs) <= case.cap, "{case:?}: cap exceeded");
    let mut per_node: HashMap<i64, Vec<Interval>> = HashMap::new();
    for r in &runs {
        per_node.entry(r.node_id).or_default().push(r.clone());
    }
    for node_runs in per_node.values() {
        assert!(
            max_overlap(node_runs) <= 1,
            "{case:?}: two runs on one node"
        );
    }
    let by_noderole: HashMap<i64, &Interval> = runs.iter().map(|r| (r.noderole_id, r)).collect();
    let edges = noderole_edge::Entity::find().all(&app.db).await.unwrap();
    for e in &edges {
        if let (Some(p), Some(c)) = (by_noderole.get(&e.parent_id), by_noderole.get(&e.child_id)) {
            assert!(
                p.finished <= c.started,
                "{case:?}: child started before parent finished"
            );
        }
    }
    let refs = noderoles::list_refs(
        &app.db,
        &noderoles::NoderoleFilter {
            limit: 10_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Expected end state per role from the graph: error if it fails itself
    // with healthy ancestors, blocked under a failed ancestor, else active.
    let mut expected: Vec<NoderoleState> = Vec::new();
    for (parents, fails, _) in &case.roles {
        let upstream_failed = parents
            .iter()
            .any(|p| expected[*p] != NoderoleState::Active);
        expected.push(if upstream_failed {
            NoderoleState::Blocked
        } else if *fails {
            NoderoleState::Error
        } else {
            NoderoleState::Active
        });
    }
    for r in refs {
        let index: usize = r.role[1..].parse().unwrap();
        assert_eq!(
            r.state, expected[index],
            "{case:?}: {} on {}",
            r.role, r.node
        );
    }
}

on_both_databases!(random_graphs_keep_every_invariant, |backend| async move {
    let mut runner = TestRunner::deterministic();
    let strategy = case_strategy();
    for _ in 0..4 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        check(backend, case).await;
    }
});
