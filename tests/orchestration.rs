//! The orchestration core on both databases: the state machine, the
//! global cap, the annealer's order, hooks, bad input and recovery, with
//! trace snapshots that read like DESIGN section 5.

mod common;

use std::time::Duration;

use common::orchestration::*;
use common::spawn_app_with;
use kiln::db::deployments;
use kiln::db::nodes::NodeChange;
use kiln::db::roles::JigKind;
use kiln::db::{bootenvs, noderoles, Backend, Key, RepoError};
use kiln::domain::binding::BindRequest;
use kiln::domain::{DomainError, NoderoleState, RunState};

const SETTLE: Duration = Duration::from_secs(60);

fn state_of(refs: &[noderoles::NoderoleRef], node: &str, role: &str) -> NoderoleState {
    refs.iter()
        .find(|r| r.node == node && r.role == role)
        .map(|r| r.state)
        .unwrap_or_else(|| panic!("no {role} on {node}"))
}

async fn all_refs(db: &sea_orm::DatabaseConnection) -> Vec<noderoles::NoderoleRef> {
    noderoles::list_refs(
        db,
        &noderoles::NoderoleFilter {
            limit: 100_000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

on_both_databases!(
    chain_of_three_roles_on_two_nodes,
    |backend: Backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let orch = &app.state.orchestrator;
        // Implicit: each node satisfies the requirement itself, rather than
        // binding to another node's noderole in the deployment.
        let mut base = role("base", JigKind::Test, &[]);
        base.implicit = true;
        let mut middle = role("middle", JigKind::Test, &["base"]);
        middle.implicit = true;
        define_roles(
            &app.db,
            &[base, middle, role("top", JigKind::Test, &["middle"])],
        )
        .await;
        add_node(orch, "n1.lab.example", 1, false).await;
        add_node(orch, "n2.lab.example", 2, false).await;
        deployments::create(&app.db, "chain", None, "")
            .await
            .unwrap();
        settle(&app.state.orchestrator, SETTLE).await;
        orch.trace().clear();

        bind_all(orch, "chain", "top", &["n1.lab.example", "n2.lab.example"]).await;
        // Binding `top` bound what it requires, proposed.
        let refs = all_refs(&app.db).await;
        assert_eq!(refs.len(), 6);
        assert!(refs.iter().all(|r| r.state == NoderoleState::Proposed));
        orch.commit_deployment(&Key::Name("chain".into()))
            .await
            .unwrap();
        let counts = settle(&app.state.orchestrator, SETTLE).await;
        assert_eq!(count(&counts, NoderoleState::Active), 6, "{counts:?}");

        // Parents finished before their children started, per node.
        let refs = all_refs(&app.db).await;
        let runs = intervals(&app.db).await;
        for node in ["n1.lab.example", "n2.lab.example"] {
            let at = |role: &str| {
                let id = refs
                    .iter()
                    .find(|r| r.node == node && r.role == role)
                    .unwrap()
                    .id;
                runs.iter().find(|r| r.noderole_id == id).unwrap().clone()
            };
            assert!(at("base").finished <= at("middle").started);
            assert!(at("middle").finished <= at("top").started);
        }
        insta::assert_snapshot!(
            "chain_of_three_roles_on_two_nodes",
            story(orch, &["n1.lab.example", "n2.lab.example"])
        );
    }
);

on_both_databases!(
    failure_blocks_descendants_then_retry,
    |backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let orch = &app.state.orchestrator;
        let mut failing = role("middle", JigKind::Test, &["base"]);
        failing.data = serde_json::json!({ "test": { "fail": true } });
        define_roles(
            &app.db,
            &[
                role("base", JigKind::Test, &[]),
                failing,
                role("top", JigKind::Test, &["middle"]),
                role("beside", JigKind::Test, &["base"]),
            ],
        )
        .await;
        add_node(orch, "n1.lab.example", 1, false).await;
        deployments::create(&app.db, "d", None, "").await.unwrap();
        settle(&app.state.orchestrator, SETTLE).await;
        orch.trace().clear();
        bind_all(orch, "d", "top", &["n1.lab.example"]).await;
        bind_all(orch, "d", "beside", &["n1.lab.example"]).await;
        orch.commit_deployment(&Key::Name("d".into()))
            .await
            .unwrap();
        settle(&app.state.orchestrator, SETTLE).await;

        let refs = all_refs(&app.db).await;
        assert_eq!(
            state_of(&refs, "n1.lab.example", "base"),
            NoderoleState::Active
        );
        assert_eq!(
            state_of(&refs, "n1.lab.example", "middle"),
            NoderoleState::Error
        );
        assert_eq!(
            state_of(&refs, "n1.lab.example", "top"),
            NoderoleState::Blocked
        );
        // Only descendants are blocked: the sibling branch ran.
        assert_eq!(
            state_of(&refs, "n1.lab.example", "beside"),
            NoderoleState::Active
        );
        let middle = refs.iter().find(|r| r.role == "middle").unwrap().id;
        let row = noderoles::get(&app.db, middle).await.unwrap();
        assert!(row.runlog.contains("failing as asked"), "{}", row.runlog);

        // Retrying an active noderole is a state conflict.
        let base = refs.iter().find(|r| r.role == "base").unwrap().id;
        assert!(matches!(
            orch.retry_noderole(base).await,
            Err(DomainError::StateConflict(_))
        ));

        // Fix the data (propose, edit, commit): middle runs, top unblocks.
        orch.propose_noderole(
            middle,
            Some(serde_json::json!({ "test": { "fail": false } })),
        )
        .await
        .unwrap();
        orch.commit_noderole(middle).await.unwrap();
        settle(&app.state.orchestrator, SETTLE).await;
        let refs = all_refs(&app.db).await;
        assert_eq!(
            state_of(&refs, "n1.lab.example", "middle"),
            NoderoleState::Active
        );
        assert_eq!(
            state_of(&refs, "n1.lab.example", "top"),
            NoderoleState::Active
        );
        insta::assert_snapshot!(
            "failure_blocks_descendants_then_retry",
            story(orch, &["n1.lab.example"])
        );
    }
);

on_both_databases!(retry_runs_a_failed_noderole_again, |backend| async move {
    let app = spawn_app_with(backend, |_| {}).await;
    let orch = &app.state.orchestrator;
    let mut failing = role("flaky", JigKind::Test, &[]);
    failing.data = serde_json::json!({ "test": { "fail": true } });
    define_roles(
        &app.db,
        &[failing, role("after", JigKind::Test, &["flaky"])],
    )
    .await;
    add_node(orch, "n1.lab.example", 1, false).await;
    deployments::create(&app.db, "d", None, "").await.unwrap();
    bind_all(orch, "d", "after", &["n1.lab.example"]).await;
    orch.commit_deployment(&Key::Name("d".into()))
        .await
        .unwrap();
    settle(&app.state.orchestrator, SETTLE).await;
    let refs = all_refs(&app.db).await;
    let flaky = refs.iter().find(|r| r.role == "flaky").unwrap().id;
    assert_eq!(
        state_of(&refs, "n1.lab.example", "after"),
        NoderoleState::Blocked
    );
    orch.retry_noderole(flaky).await.unwrap();
    settle(&app.state.orchestrator, SETTLE).await;
    let runs: Vec<_> = intervals(&app.db)
        .await
        .into_iter()
        .filter(|r| r.noderole_id == flaky)
        .collect();
    assert_eq!(runs.len(), 2, "retry queued a second run");
    assert!(runs.iter().all(|r| r.state == RunState::Failed));
    let refs = all_refs(&app.db).await;
    assert_eq!(
        state_of(&refs, "n1.lab.example", "after"),
        NoderoleState::Blocked
    );
});

on_both_databases!(thirty_nodes_share_ten_slots, |backend| async move {
    let app = spawn_app_with(backend, |s| s.scheduler.max_concurrent_runs = 10).await;
    let orch = &app.state.orchestrator;
    let mut slow = role("burnin", JigKind::Test, &[]);
    slow.data = serde_json::json!({ "test": { "delay_ms": 150 } });
    define_roles(&app.db, &[slow]).await;
    let names: Vec<String> = (1..=30).map(|i| format!("n{i:02}.lab.example")).collect();
    for (i, name) in names.iter().enumerate() {
        add_node(orch, name, i as u32 + 1, false).await;
    }
    deployments::create(&app.db, "burnin", None, "")
        .await
        .unwrap();
    settle(&app.state.orchestrator, SETTLE).await;
    orch.trace().clear();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    bind_all(orch, "burnin", "burnin", &refs).await;
    orch.commit_deployment(&Key::Name("burnin".into()))
        .await
        .unwrap();
    let counts = settle(&app.state.orchestrator, SETTLE).await;
    assert_eq!(count(&counts, NoderoleState::Active), 30);
    let runs = intervals(&app.db).await;
    assert_eq!(runs.len(), 30);
    let overlap = max_overlap(&runs);
    assert!(overlap <= 10, "{overlap} runs overlapped with a cap of 10");
    assert!(
        overlap >= 5,
        "the cap was not used: at most {overlap} at once"
    );
    // Every node tells the same story; one is the snapshot.
    let stories: Vec<String> = names
        .iter()
        .map(|n| story(orch, &[n.as_str()]).replace(n.as_str(), "nX"))
        .collect();
    assert!(stories.windows(2).all(|w| w[0] == w[1]), "{stories:#?}");
    insta::assert_snapshot!("thirty_nodes_share_ten_slots", stories[0].clone());
});

on_both_databases!(seed_flow_up_to_dhcp_database_reruns, |backend| async move {
    let app = spawn_app_with(backend, |s| {
        s.scheduler.max_concurrent_runs = 10;
        s.sim.reboot_delay_ms = 60_000;
    })
    .await;
    let orch = &app.state.orchestrator;
    let mut dhcp = role("provisioner-dhcp-database", JigKind::Noop, &[]);
    dhcp.priority = true;
    dhcp.cluster = true;
    let mut install = role("provisioner-os-install", JigKind::Builtin, &[]);
    install.destructive = true;
    define_roles(&app.db, &[dhcp, install]).await;
    bootenvs::upsert(
        &app.db,
        &bootenvs::BootenvSpec {
            name: "ubuntu-24.04-install".into(),
            kind: bootenvs::BootenvKind::Ipxe,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    add_node(orch, "admin.lab.example", 1, true).await;
    bind_all(
        orch,
        "system",
        "provisioner-dhcp-database",
        &["admin.lab.example"],
    )
    .await;
    orch.commit_deployment(&Key::Name("system".into()))
        .await
        .unwrap();
    let nodes = ["n1.lab.example", "n2.lab.example", "n3.lab.example"];
    for (i, n) in nodes.iter().enumerate() {
        add_node(orch, n, i as u32 + 2, false).await;
    }
    settle(&app.state.orchestrator, SETTLE).await;
    orch.trace().clear();

    deployments::create(&app.db, "ubuntu", None, "")
        .await
        .unwrap();
    bind_all(orch, "ubuntu", "provisioner-os-install", &nodes).await;
    orch.commit_deployment(&Key::Name("ubuntu".into()))
        .await
        .unwrap();
    settle(&app.state.orchestrator, SETTLE).await;

    for n in nodes {
        let node = kiln::db::nodes::get(&app.db, &Key::Name(n.into()))
            .await
            .unwrap();
        assert_eq!(node.bootenv, "ubuntu-24.04-install");
        assert!(!node.alive);
    }
    // A DHCP database run started after each bootenv change and finished.
    let dhcp_runs: Vec<_> = intervals(&app.db)
        .await
        .into_iter()
        .filter(|r| r.state == RunState::Succeeded)
        .collect();
    let install_runs = dhcp_runs.iter().filter(|r| r.node_id != 1).count();
    assert_eq!(install_runs, 3);
    let refs = all_refs(&app.db).await;
    let dhcp_nr = refs
        .iter()
        .find(|r| r.role == "provisioner-dhcp-database")
        .unwrap();
    let row = noderoles::get(&app.db, dhcp_nr.id).await.unwrap();
    for n in nodes {
        assert_eq!(row.committed_data["bootenvs"][n], "ubuntu-24.04-install");
    }
    let last_install = dhcp_runs
        .iter()
        .filter(|r| r.node_id != 1)
        .map(|r| r.finished)
        .max()
        .unwrap();
    assert!(
        dhcp_runs
            .iter()
            .any(|r| r.node_id == 1 && r.started >= last_install),
        "a dhcp database run follows the last bootenv change"
    );
    insta::assert_snapshot!("seed_flow_up_to_dhcp_database_reruns", story(orch, &nodes));
});

on_both_databases!(bad_input_is_refused_whole, |backend| async move {
    let app = spawn_app_with(backend, |_| {}).await;
    let orch = &app.state.orchestrator;
    define_roles(
        &app.db,
        &[
            role("left", JigKind::Noop, &["right"]),
            role("right", JigKind::Noop, &["left"]),
            role("needs-ghost", JigKind::Noop, &["ghost"]),
        ],
    )
    .await;
    add_node(orch, "n1.lab.example", 1, false).await;
    deployments::create(&app.db, "d", None, "").await.unwrap();
    let bind = |node: &str, role: &str, deployment: &str| BindRequest {
        node: Key::Name(node.into()),
        role: Key::Name(role.into()),
        deployment: Key::Name(deployment.into()),
        data: None,
    };
    let before = all_refs(&app.db).await.len();
    let cycle = orch.bind(bind("n1.lab.example", "left", "d")).await;
    assert!(matches!(cycle, Err(DomainError::Cycle { .. })), "{cycle:?}");
    let ghost = orch.bind(bind("n1.lab.example", "needs-ghost", "d")).await;
    assert!(matches!(&ghost, Err(DomainError::Invalid { field, .. }) if field == "role"));
    let no_role = orch.bind(bind("n1.lab.example", "nope", "d")).await;
    assert!(matches!(&no_role, Err(DomainError::Invalid { field, .. }) if field == "role"));
    let no_node = orch.bind(bind("n9.lab.example", "left", "d")).await;
    assert!(matches!(&no_node, Err(DomainError::Invalid { field, .. }) if field == "node"));
    assert_eq!(
        all_refs(&app.db).await.len(),
        before,
        "no half-made binding"
    );

    let unknown = orch.commit_deployment(&Key::Name("nope".into())).await;
    assert!(matches!(
        unknown,
        Err(DomainError::Repo(RepoError::NotFound { .. }))
    ));
    let bad_bootenv = orch
        .update_node(
            &Key::Name("n1.lab.example".into()),
            NodeChange {
                bootenv: Some("plan9-install".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(&bad_bootenv, Err(DomainError::Invalid { field, .. }) if field == "bootenv"));
});

on_both_databases!(
    missing_or_unexecutable_script_fails_the_run,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let not_exec = dir.path().join("not-exec.sh");
        std::fs::write(&not_exec, "#!/bin/sh\nexit 0\n").unwrap();
        let good = dir.path().join("good.sh");
        std::fs::write(
        &good,
        "#!/bin/sh\necho \"hello $KILN_NODE $KILN_ROLE\"\necho '{\"seen\":\"'$KILN_NODE_ADDRESS'\"}' > \"$KILN_WALL_FILE\"\n",
    )
    .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o755)).unwrap();
        let scripts_dir = dir.path().to_path_buf();
        let app = spawn_app_with(backend, move |s| s.jigs.scripts_dir = scripts_dir).await;
        let orch = &app.state.orchestrator;
        let mut missing = role("missing", JigKind::Script, &[]);
        missing.scripts = vec!["does-not-exist.sh".into()];
        let mut unexec = role("unexec", JigKind::Script, &[]);
        unexec.scripts = vec!["not-exec.sh".into()];
        let mut fine = role("fine", JigKind::Script, &[]);
        fine.scripts = vec!["good.sh".into()];
        define_roles(&app.db, &[missing, unexec, fine]).await;
        add_node(orch, "n1.lab.example", 1, false).await;
        deployments::create(&app.db, "d", None, "").await.unwrap();
        bind_all(orch, "d", "missing", &["n1.lab.example"]).await;
        bind_all(orch, "d", "unexec", &["n1.lab.example"]).await;
        bind_all(orch, "d", "fine", &["n1.lab.example"]).await;
        orch.commit_deployment(&Key::Name("d".into()))
            .await
            .unwrap();
        settle(&app.state.orchestrator, SETTLE).await;
        let refs = all_refs(&app.db).await;
        let log = |role: &str| {
            let id = refs.iter().find(|r| r.role == role).unwrap().id;
            let db = app.db.clone();
            async move { noderoles::get(&db, id).await.unwrap() }
        };
        let m = log("missing").await;
        assert_eq!(m.state, NoderoleState::Error);
        assert!(m.runlog.contains("does not exist"), "{}", m.runlog);
        let u = log("unexec").await;
        assert_eq!(u.state, NoderoleState::Error);
        assert!(u.runlog.contains("not executable"), "{}", u.runlog);
        let f = log("fine").await;
        assert_eq!(f.state, NoderoleState::Active, "{}", f.runlog);
        assert!(
            f.runlog.contains("hello n1.lab.example fine"),
            "{}",
            f.runlog
        );
        assert_eq!(f.wall["seen"], "10.99.0.2");
    }
);

on_both_databases!(interrupted_run_is_requeued_at_start, |backend| async move {
    use kiln::domain::anneal::{pass, QueueSeq};
    use sea_orm::TransactionTrait;
    let test_db = common::TestDb::new(backend).await;
    let db = test_db.connect().await;
    define_roles(&db, &[role("work", JigKind::Test, &[])]).await;
    let (view, _, _) = kiln::domain::nodes::create_node(
        &db,
        kiln::db::nodes::NewNode {
            name: "n1.lab.example".into(),
            alive: true,
            available: true,
            bootenv: "sledgehammer".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    deployments::create(&db, "d", None, "").await.unwrap();
    let txn = db.begin().await.unwrap();
    kiln::domain::binding::bind(
        &txn,
        &BindRequest {
            node: Key::Id(view.node.id),
            role: Key::Name("work".into()),
            deployment: Key::Name("d".into()),
            data: None,
        },
    )
    .await
    .unwrap();
    kiln::domain::lifecycle::commit_deployment(&txn, &Key::Name("d".into()))
        .await
        .unwrap();
    let (effects, _) = pass(&txn, 10, &QueueSeq::default()).await.unwrap();
    txn.commit().await.unwrap();
    // The process "crashed" right after the run started.
    let started = kiln::db::runs::mark_running(&db, effects.runs[0].id)
        .await
        .unwrap()
        .expect("the run was queued");
    assert_eq!(started.state, RunState::Running);
    drop(db);

    let settings = common::test_settings(&test_db);
    let app = kiln::app::Application::build(settings)
        .await
        .expect("restart");
    let db = app.state().db.clone();
    let orch = app.state().orchestrator.clone();
    common::stop_at_end(app.stopper());
    actix_web::rt::spawn(app.run_until_stopped());
    let counts = settle(&orch, SETTLE).await;
    assert_eq!(count(&counts, NoderoleState::Active), 1, "{counts:?}");
    let runs = intervals(&db).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Succeeded);
    assert_eq!(
        noderoles::get(&db, runs[0].noderole_id)
            .await
            .unwrap()
            .state,
        NoderoleState::Active
    );
});

// A count of unmet parents that drifted (as a binding racing a parent's run
// once made it on PostgreSQL) is recounted at start, so nothing waits on a
// parent that is long active.
on_both_databases!(
    drifted_unmet_parents_are_recounted_at_start,
    |backend| async move {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        define_roles(
            &db,
            &[
                role("base", JigKind::Test, &[]),
                role("work", JigKind::Test, &["base"]),
            ],
        )
        .await;
        let (view, _, _) = kiln::domain::nodes::create_node(
            &db,
            kiln::db::nodes::NewNode {
                name: "n1.lab.example".into(),
                alive: true,
                available: true,
                bootenv: "sledgehammer".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        deployments::create(&db, "d", None, "").await.unwrap();
        let txn = db.begin().await.unwrap();
        kiln::domain::binding::bind(
            &txn,
            &BindRequest {
                node: Key::Id(view.node.id),
                role: Key::Name("work".into()),
                deployment: Key::Name("d".into()),
                data: None,
            },
        )
        .await
        .unwrap();
        kiln::domain::lifecycle::commit_deployment(&txn, &Key::Name("d".into()))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        db.execute_unprepared("UPDATE noderole SET unmet_parents = unmet_parents + 3")
            .await
            .unwrap();
        drop(db);

        let app = kiln::app::Application::build(common::test_settings(&test_db))
            .await
            .expect("start");
        let db = app.state().db.clone();
        let orch = app.state().orchestrator.clone();
        common::stop_at_end(app.stopper());
        actix_web::rt::spawn(app.run_until_stopped());
        let counts = settle(&orch, SETTLE).await;
        assert_eq!(count(&counts, NoderoleState::Active), 2, "{counts:?}");
        let runs = intervals(&db).await;
        assert_eq!(runs.len(), 2, "base then work, each once");
    }
);

/// Makes every insert into `run` fail, as a database that refuses writes
/// for a while would, or lets them through again.
async fn refuse_new_runs(db: &sea_orm::DatabaseConnection, backend: Backend, refuse: bool) {
    use sea_orm::ConnectionTrait;
    let sql = match (backend, refuse) {
        (Backend::Postgres, true) => {
            "ALTER TABLE run ADD CONSTRAINT test_refuses_runs CHECK (false) NOT VALID"
        }
        (Backend::Postgres, false) => "ALTER TABLE run DROP CONSTRAINT test_refuses_runs",
        (_, true) => {
            "CREATE TRIGGER test_refuses_runs BEFORE INSERT ON run \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        }
        (_, false) => "DROP TRIGGER test_refuses_runs",
    };
    db.execute_unprepared(sql).await.unwrap();
}

on_both_databases!(
    a_failed_annealer_pass_is_tried_again_without_a_new_event,
    |backend: Backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let orch = &app.state.orchestrator;
        define_roles(&app.db, &[role("work", JigKind::Noop, &[])]).await;
        add_node(orch, "n1.lab.example", 1, false).await;
        settle(&app.state.orchestrator, SETTLE).await;
        deployments::create(&app.db, "retry", None, "")
            .await
            .unwrap();
        bind_all(orch, "retry", "work", &["n1.lab.example"]).await;

        refuse_new_runs(&app.db, backend, true).await;
        orch.commit_deployment(&Key::Name("retry".into()))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while orch.annealer_status().await.unwrap().last_error.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the annealer never tried to queue the run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The database takes runs again; nothing else happens in kiln, so
        // only the annealer's own retry can queue this one.
        refuse_new_runs(&app.db, backend, false).await;
        let counts = settle(&app.state.orchestrator, Duration::from_secs(20)).await;
        assert_eq!(count(&counts, NoderoleState::Active), 1, "{counts:?}");
        assert!(orch.annealer_status().await.unwrap().last_error.is_none());
    }
);

on_both_databases!(
    an_unblocking_walk_frees_what_it_unblocked_further_down,
    |backend| async move {
        use kiln::domain::transitions::walk_to_unblock;
        use kiln::domain::Fact;
        use sea_orm::TransactionTrait;

        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        let system = deployments::get(&db, &Key::Name("system".into()))
            .await
            .unwrap();
        let (node, _) = kiln::db::nodes::create(
            &db,
            kiln::db::nodes::NewNode {
                name: "n1.lab.example".into(),
                bootenv: "local".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // root -> child -> grandchild (and root -> grandchild); the child
        // also holds back `failed_below` (whose other parent is in error)
        // and `blocked_below` (whose other parent is blocked elsewhere).
        let names = [
            "root",
            "child",
            "grandchild",
            "elsewhere_error",
            "failed_below",
            "elsewhere_blocked",
            "blocked_below",
        ];
        let mut rows = Vec::new();
        for name in names {
            let (role, _) = kiln::db::roles::upsert(
                &db,
                &kiln::db::roles::RoleSpec::new(name, JigKind::Noop, &[]),
            )
            .await
            .unwrap();
            rows.push(
                noderoles::insert(&db, node.node.id, role.id, system.id, serde_json::json!({}))
                    .await
                    .unwrap(),
            );
        }
        let id = |name: &str| rows[names.iter().position(|n| *n == name).unwrap()].id;
        for (parent, child) in [
            ("root", "child"),
            ("root", "grandchild"),
            ("child", "grandchild"),
            ("child", "failed_below"),
            ("elsewhere_error", "failed_below"),
            ("child", "blocked_below"),
            ("elsewhere_blocked", "blocked_below"),
        ] {
            let parent = &rows[names.iter().position(|n| *n == parent).unwrap()];
            noderoles::add_edge(&db, parent, id(child)).await.unwrap();
        }
        for (name, state) in [
            ("root", NoderoleState::Active),
            ("child", NoderoleState::Blocked),
            ("grandchild", NoderoleState::Blocked),
            ("elsewhere_error", NoderoleState::Error),
            ("failed_below", NoderoleState::Blocked),
            ("elsewhere_blocked", NoderoleState::Blocked),
            ("blocked_below", NoderoleState::Blocked),
        ] {
            noderoles::set_state(&db, &[id(name)], state).await.unwrap();
        }

        let txn = db.begin().await.unwrap();
        let facts = walk_to_unblock(&txn, id("root")).await.unwrap();
        txn.commit().await.unwrap();
        let moved: Vec<(String, NoderoleState, NoderoleState)> = facts
            .iter()
            .filter_map(|f| match f {
                Fact::NoderoleStateChanged(c) => Some((c.role.clone(), c.from, c.to)),
                _ => None,
            })
            .collect();
        assert_eq!(
            moved,
            vec![
                ("child".into(), NoderoleState::Blocked, NoderoleState::Todo),
                (
                    "grandchild".into(),
                    NoderoleState::Blocked,
                    NoderoleState::Todo
                ),
            ]
        );
        let refs = all_refs(&db).await;
        for (role, state) in [
            ("child", NoderoleState::Todo),
            ("grandchild", NoderoleState::Todo),
            ("failed_below", NoderoleState::Blocked),
            ("blocked_below", NoderoleState::Blocked),
        ] {
            assert_eq!(state_of(&refs, "n1.lab.example", role), state, "{role}");
        }
    }
);
