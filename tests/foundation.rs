//! The foundation: settings, migrations, repository errors, `/health`, and
//! the binary's refusals, on both databases.

mod common;

use std::process::Command;

use common::{spawn_app, TestDb};
use kiln::db::{self, deployments, nodes, Backend, Key, RepoError};
use kiln::settings::{LogFormat, Settings, SettingsError};
use sea_orm::ConnectionTrait;

on_both_databases!(health_names_the_backend, |backend: Backend| async move {
    let app = spawn_app(backend).await;
    let response = app.get("/health").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], expected);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
});

on_both_databases!(migrations_seed_system_and_bootenvs, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let conn = test_db.connect().await;
    let system = deployments::get(&conn, &Key::Name("system".into()))
        .await
        .expect("system deployment");
    assert_eq!(system.parent_id, None);
    let names: Vec<String> = db::bootenvs::list(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, vec!["local".to_string(), "sledgehammer".to_string()]);
    // Migrating again is a no-op.
    db::migrate(&conn).await.expect("second migrate");
});

on_both_databases!(newer_schema_is_refused, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let conn = test_db.connect().await;
    conn.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_future', 0)",
    )
    .await
    .expect("insert fake migration");
    let err = db::migrate(&conn).await.expect_err("newer schema refused");
    assert!(err.to_string().contains("m29990101_000001_future"), "{err}");
});

fn node(name: &str, mac: &str) -> nodes::NewNode {
    nodes::NewNode {
        name: name.into(),
        bootenv: "sledgehammer".into(),
        available: true,
        interfaces: vec![nodes::NewInterface {
            mac: mac.into(),
            ip: Some("10.99.0.11".into()),
            hostname: None,
        }],
        ..Default::default()
    }
}

on_both_databases!(repository_errors_are_typed, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let conn = test_db.connect().await;
    let (created, token) = nodes::create(&conn, node("n1.lab.example", "52-54-00-00-00-01"))
        .await
        .expect("create");
    assert_eq!(created.interfaces[0].mac, "52:54:00:00:00:01");
    assert!(nodes::token_matches(&created.node, &token));
    assert!(!nodes::token_matches(&created.node, "wrong"));

    let dup_name = nodes::create(&conn, node("n1.lab.example", "52:54:00:00:00:02")).await;
    assert!(
        matches!(dup_name, Err(RepoError::Duplicate { entity: "node", .. })),
        "{dup_name:?}"
    );

    // A duplicate MAC fails the whole creation: no half-made node is left.
    let mut dup_mac = node("n2.lab.example", "52:54:00:00:00:01");
    dup_mac.interfaces[0].ip = Some("10.99.0.12".into());
    let result = nodes::create(&conn, dup_mac).await;
    assert!(
        matches!(
            result,
            Err(RepoError::Duplicate {
                entity: "interface",
                ..
            })
        ),
        "{result:?}"
    );
    let missing = nodes::get(&conn, &Key::Name("n2.lab.example".into())).await;
    assert!(matches!(
        missing,
        Err(RepoError::NotFound { entity: "node", .. })
    ));

    let mut bad_bootenv = node("n3.lab.example", "52:54:00:00:00:03");
    bad_bootenv.bootenv = "no-such-os".into();
    bad_bootenv.interfaces[0].ip = Some("10.99.0.13".into());
    let result = nodes::create(&conn, bad_bootenv).await;
    assert!(
        matches!(
            result,
            Err(RepoError::NotFound {
                entity: "bootenv",
                ..
            })
        ),
        "{result:?}"
    );

    let bad_mac = nodes::create(&conn, node("n4.lab.example", "not-a-mac")).await;
    assert!(
        matches!(&bad_mac, Err(RepoError::Invalid { field, .. }) if field == "interfaces[0].mac"),
        "{bad_mac:?}"
    );

    let in_use = conn
        .execute_unprepared("DELETE FROM bootenv WHERE name = 'sledgehammer'")
        .await;
    assert!(
        matches!(
            RepoError::from(in_use.expect_err("bootenv in use")),
            RepoError::ForeignKey { .. }
        ),
        "deleting a bootenv in use must be a foreign-key violation"
    );
});

on_both_databases!(deployments_form_a_tree, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let conn = test_db.connect().await;
    let ubuntu = deployments::create(&conn, "ubuntu", None, "")
        .await
        .unwrap();
    let child = deployments::create(&conn, "ubuntu-rack1", Some("ubuntu"), "")
        .await
        .unwrap();
    let chain: Vec<String> = deployments::ancestry(&conn, child.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(chain, ["ubuntu-rack1", "ubuntu", "system"]);
    assert_eq!(ubuntu.state, deployments::DeploymentState::Proposed);
    let orphan = deployments::create(&conn, "x", Some("nope"), "").await;
    assert!(matches!(&orphan, Err(RepoError::Invalid { field, .. }) if field == "parent"));
});

#[test]
fn settings_layer_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.toml");
    std::fs::write(
        &file,
        "[http]\nbind = \"127.0.0.1:4000\"\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let env = [(
        "KILN_SCHEDULER__MAX_CONCURRENT_RUNS".to_string(),
        "3".to_string(),
    )];
    let settings = Settings::load_with_env(Some(&file), env).expect("loads");
    assert_eq!(settings.http.bind, "127.0.0.1:4000");
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!(settings.scheduler.max_concurrent_runs, 3);
    assert_eq!(Settings::defaults().scheduler.max_concurrent_runs, 10);
    assert_eq!(
        Settings::defaults().database.url,
        "sqlite://kiln.db?mode=rwc"
    );
}

#[test]
fn settings_errors_name_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.toml");
    std::fs::write(&file, "[http]\nbindd = \"x\"\n").unwrap();
    let err = Settings::load_with_env(Some(&file), []).expect_err("unknown key");
    assert!(
        matches!(&err, SettingsError::UnknownKey { key, origin } if key == "http.bindd" && origin.contains("site.toml")),
        "{err}"
    );

    let env = [(
        "KILN_SCHEDULER__MAX_CONCURRENT_RUNS".to_string(),
        "many".to_string(),
    )];
    let err = Settings::load_with_env(None, env).expect_err("wrong type");
    let text = err.to_string();
    assert!(text.contains("scheduler.max_concurrent_runs"), "{text}");
    assert!(text.contains("environment"), "{text}");

    // Unrelated KILN_ variables (no double underscore) are not settings.
    let env = [("KILN_TEST_POSTGRES_URL".to_string(), "x".to_string())];
    Settings::load_with_env(None, env).expect("ignored");
}

#[test]
fn binary_refuses_bad_settings_with_one_line_and_nonzero_exit() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("serve")
        .env("KILN_HTTP__BINDD", "x")
        .output()
        .expect("run kiln");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http.bindd"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn binary_refuses_unreachable_database() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("migrate")
        .env(
            "KILN_DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/nowhere",
        )
        .output()
        .expect("run kiln");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn binary_refuses_open_api_beyond_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("serve")
        .env("KILN_HTTP__BIND", "0.0.0.0:0")
        .env(
            "KILN_DATABASE__URL",
            format!(
                "sqlite://{}?mode=rwc",
                tempfile::tempdir().unwrap().keep().join("k.db").display()
            ),
        )
        .output()
        .expect("run kiln");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.admin_token"), "{stderr}");
}
