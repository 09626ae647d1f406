//! The `kiln` commands that drive a running kiln through its API.

mod common;

use common::orchestration::{define_roles, role};
use common::{spawn_app, TEST_TOKEN};
use kiln::db::roles::JigKind;

async fn kiln(app: &common::TestApp, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_URL", &app.address)
        .env("KILN_TOKEN", TEST_TOKEN)
        .output()
        .await
        .expect("run kiln");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

on_both_databases!(cli_walkthrough, |backend| async move {
    let app = spawn_app(backend).await;
    define_roles(&app.db, &[role("burnin", JigKind::Noop, &[])]).await;
    app.post("/api/v2/nodes")
        .json(&serde_json::json!({"name": "n1.lab.example", "alive": true,
            "interfaces": [{"mac": "52:54:00:00:00:01", "ip": "10.99.0.11"}]}))
        .send()
        .await
        .unwrap();
    let (ok, out, err) = kiln(&app, &["nodes"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("id  name"), "{out}");
    assert!(
        out.contains("n1.lab.example  sledgehammer  true   true       -      10.99.0.11"),
        "{out}"
    );

    let (ok, _, err) = kiln(&app, &["create-deployment", "burnin"]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = kiln(&app, &["bind", "burnin", "burnin", "n1.lab.example"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("proposed"), "{out}");
    let (ok, _, err) = kiln(&app, &["commit", "burnin"]).await;
    assert!(ok, "{err}");
    common::orchestration::settle(&app.state.orchestrator, std::time::Duration::from_secs(30))
        .await;
    let (ok, out, err) = kiln(&app, &["noderoles", "--deployment", "burnin", "--json"]).await;
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["state"], "active", "{out}");
    let (ok, out, _) = kiln(&app, &["runs"]).await;
    assert!(ok);
    assert!(out.contains("burnin") && out.contains("succeeded"), "{out}");

    // API errors come back as one line naming the field.
    let (ok, _, err) = kiln(&app, &["bind", "burnin", "ghost", "n1.lab.example"]).await;
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("422") && err.contains("field role"), "{err}");
    let id = list[0]["id"].to_string();
    let (ok, _, err) = kiln(&app, &["retry", &id]).await;
    assert!(!ok);
    assert!(err.contains("409"), "{err}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["nodes", "--url", &app.address, "--token", "wrong"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
});

on_both_databases!(cli_anneal_prints_why_work_waits, |backend| async move {
    let app = spawn_app(backend).await;
    define_roles(&app.db, &[role("burnin", JigKind::Noop, &[])]).await;
    app.post("/api/v2/nodes")
        .json(&serde_json::json!({"name": "down.lab.example"}))
        .send()
        .await
        .unwrap();
    for args in [
        &["create-deployment", "burnin"][..],
        &["bind", "burnin", "burnin", "down.lab.example"],
        &["commit", "burnin"],
    ] {
        let (ok, _, err) = kiln(&app, args).await;
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, out, err) = kiln(&app, &["anneal"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("work remains\n"), "{out}");
    let reason = out
        .lines()
        .find(|l| l.starts_with("node not alive"))
        .unwrap_or_else(|| panic!("no reason in: {out}"));
    let (ok, json, _) = kiln(&app, &["anneal", "--json"]).await;
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let n = json["waiting"]["node_not_alive"].as_i64().unwrap();
    assert!(n >= 1, "{json}");
    assert!(reason.ends_with(&format!("  {n}")), "{out}");
    assert!(!out.contains("node not available"), "{out}");
});
