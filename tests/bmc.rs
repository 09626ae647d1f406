//! Nodes' BMCs through the API on both databases: the password is
//! write-only and sealed at rest, bad BMC input is refused naming the
//! field, a start without the key that opens the stored passwords is
//! refused, and power status and actions go through the node's driver (here
//! the command driver, a shell script standing in for a PDU), with a BMC's
//! failure as a 502 carrying its message, and a failed reboot putting the
//! os-install noderole in error.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln::app::Application;
use kiln::settings::Settings;
use serde_json::{json, Value};

const KEY: &str = "bmc-test-key-of-some-length";
const PASSWORD: &str = "pdu-Pa55word-7Q";

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(PASSWORD),
        "a response carries the BMC password: {text}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A power "BMC" as a script: state in `state`, every call in
/// `actions.log`, the password checked (never printed).
fn pdu(dir: &Path) -> PathBuf {
    let script = dir.join("pdu.sh");
    let d = dir.display();
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo "$KILN_POWER_ACTION $KILN_NODE $KILN_BMC_ADDRESS $KILN_BMC_USERNAME" >> {d}/actions.log
if [ "$KILN_BMC_PASSWORD" != "{PASSWORD}" ]; then echo "login refused for $KILN_BMC_USERNAME" >&2; exit 3; fi
case "$KILN_POWER_ACTION" in
  status) cat {d}/state 2>/dev/null || echo off ;;
  on|cycle) echo on > {d}/state ;;
  off|soft_off) echo off > {d}/state ;;
  boot_pxe|boot_disk) echo "$KILN_POWER_ACTION" > {d}/next ;;
esac
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn with_key(settings: &mut Settings) {
    settings.bmc.secret_key = KEY.into();
    settings.bmc.poll_interval_ms = 0;
}

fn ipmi_node(name: &str, password: Option<&str>) -> Value {
    let mut bmc = json!({"driver": "ipmi", "address": "10.20.0.5:623", "username": "admin"});
    if let Some(p) = password {
        bmc["password"] = json!(p);
    }
    json!({"name": name, "bmc": bmc})
}

on_both_databases!(
    a_bmc_password_is_write_only_and_sealed,
    |backend| async move {
        let app = common::spawn_app_with(backend, with_key).await;
        let (status, created) = body(
            app.post("/api/v2/nodes")
                .json(&ipmi_node("b1.lab.example", Some(PASSWORD)))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["bmc"]["driver"], "ipmi");
        assert_eq!(created["bmc"]["address"], "10.20.0.5:623");
        assert_eq!(created["bmc"]["password_set"], true);
        assert!(created["bmc"].get("password").is_none(), "{created}");
        assert_eq!(created["bmc"]["power"]["state"], "unknown");
        let id = created["id"].as_i64().unwrap();

        let row = kiln::db::bmcs::get(&app.db, id).await.unwrap().unwrap();
        let sealed = row.password_sealed.unwrap();
        assert!(!sealed.contains(PASSWORD), "stored in the clear: {sealed}");
        let key = kiln::bmc::SecretKey::from_passphrase(KEY).unwrap();
        assert_eq!(key.open(&sealed).unwrap().expose(), PASSWORD);

        // A new address without a password keeps the stored one.
        let (status, moved) = body(
        app.put("/api/v2/nodes/b1.lab.example")
            .json(&json!({"bmc": {"driver": "ipmi", "address": "10.20.0.6", "username": "admin"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["bmc"]["address"], "10.20.0.6");
        assert_eq!(moved["bmc"]["password_set"], true);
        let (_, listed) = body(app.get("/api/v2/nodes").send().await.unwrap()).await;
        assert_eq!(listed[0]["bmc"]["password_set"], true, "{listed}");

        // An empty password removes it; null removes the BMC.
        let (_, cleared) = body(
            app.put("/api/v2/nodes/b1.lab.example")
                .json(&json!({"bmc": {"driver": "ipmi", "address": "10.20.0.6", "password": ""}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(cleared["bmc"]["password_set"], false, "{cleared}");
        let (_, removed) = body(
            app.put("/api/v2/nodes/b1.lab.example")
                .json(&json!({"bmc": null}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(removed["bmc"], Value::Null, "{removed}");
    }
);

on_both_databases!(
    bad_bmc_input_is_refused_naming_the_field,
    |backend| async move {
        let app = common::spawn_app_with(backend, with_key).await;
        for (bmc, field) in [
            (json!({"driver": "ipmi", "address": "a b"}), "bmc.address"),
            (
                json!({"driver": "ipmi", "address": "10.0.0.1:70000"}),
                "bmc.address",
            ),
            (
                json!({"driver": "redfish", "address": "10.0.0.1"}),
                "bmc.address",
            ),
            (
                json!({"driver": "redfish", "address": "https://10.0.0.1", "system": ""}),
                "bmc.system",
            ),
        ] {
            let (status, err) = body(
                app.post("/api/v2/nodes")
                    .json(&json!({"name": "bad.lab.example", "bmc": bmc}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 422, "{bmc}: {err}");
            assert_eq!(err["error"]["field"], field, "{bmc}: {err}");
        }
        let (status, err) = body(
            app.post("/api/v2/nodes")
                .json(&json!({"name": "bad.lab.example", "bmc": {"driver": "telnet"}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(status == 400 || status == 422, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("telnet"),
            "{err}"
        );
        let (status, _) = body(
            app.get("/api/v2/nodes/bad.lab.example")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "nothing half-written");

        // The node's own token may not touch its BMC.
        let (_, created) = body(
            app.post("/api/v2/nodes")
                .json(&json!({"name": "self.lab.example"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let token = created["token"].as_str().unwrap();
        let resp = app
            .client
            .put(format!("{}/api/v2/nodes/self.lab.example", app.address))
            .bearer_auth(token)
            .json(&json!({"bmc": {"driver": "ipmi", "address": "10.9.9.9"}}))
            .send()
            .await
            .unwrap();
        let (status, err) = body(resp).await;
        assert_eq!(status, 403, "{err}");
        assert_eq!(err["error"]["field"], "bmc", "{err}");
    }
);

on_both_databases!(a_password_needs_a_key, |backend| async move {
    let app = common::spawn_app(backend).await;
    let (status, err) = body(
        app.post("/api/v2/nodes")
            .json(&ipmi_node("b1.lab.example", Some(PASSWORD)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "bmc.password", "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("bmc.secret_key"));
    // Without a password, a BMC needs no key.
    let (status, _) = body(
        app.post("/api/v2/nodes")
            .json(&ipmi_node("b2.lab.example", None))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
});

on_both_databases!(
    a_start_without_the_right_key_is_refused,
    |backend| async move {
        let test_db = common::TestDb::new(backend).await;
        let mut settings = common::test_settings(&test_db);
        with_key(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("kiln starts");
        let stopper = app.stopper();
        actix_web::rt::spawn(app.run_until_stopped());
        let db = test_db.connect().await;
        let key = kiln::bmc::SecretKey::from_passphrase(KEY).unwrap();
        let (view, _) = kiln::db::nodes::create(
            &db,
            kiln::db::nodes::NewNode {
                name: "b1.lab.example".into(),
                bootenv: "sledgehammer".into(),
                available: true,
                bmc: Some(kiln::db::bmcs::BmcWrite {
                    driver: "ipmi".into(),
                    address: "10.20.0.5".into(),
                    username: "admin".into(),
                    password: kiln::db::bmcs::PasswordWrite::Sealed(
                        key.seal(&kiln::bmc::Secret::new(PASSWORD)),
                    ),
                    system: None,
                    verify_tls: true,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(view.bmc.is_some());
        stopper.stop().await;

        let mut keyless = settings.clone();
        keyless.bmc.secret_key = String::new();
        let err = Application::build(keyless).await.err().expect("refused");
        assert!(err.to_string().contains("bmc.secret_key"), "{err}");
        let mut wrong = settings.clone();
        wrong.bmc.secret_key = "another-key-of-enough-length".into();
        let err = Application::build(wrong).await.err().expect("refused");
        assert!(err.to_string().contains("wrong"), "{err}");
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key_file.path(), format!("{KEY}\n")).unwrap();
        let mut from_file = settings.clone();
        from_file.bmc.secret_key = String::new();
        from_file.bmc.secret_key_file = key_file.path().display().to_string();
        let app = Application::build(from_file)
            .await
            .expect("the key file opens them");
        common::stop_at_end(app.stopper());
    }
);

/// kiln with the PDU script as its command driver.
async fn start_with_pdu(backend: kiln::db::Backend, dir: &Path) -> common::TestApp {
    let script = pdu(dir);
    common::spawn_app_with(backend, |s| {
        with_key(s);
        s.power.command = script.display().to_string();
    })
    .await
}

fn actions(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("actions.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

on_both_databases!(power_goes_through_the_nodes_driver, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_pdu(backend, dir.path()).await;
    let node = json!({"name": "p1.lab.example", "bmc": {
        "driver": "command", "address": "pdu-3/outlet-7", "username": "ops", "password": PASSWORD}});
    let (status, _) = body(app.post("/api/v2/nodes").json(&node).send().await.unwrap()).await;
    assert_eq!(status, 201);

    let (status, off) = body(
        app.get("/api/v2/nodes/p1.lab.example/power")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["state"], "off", "{off}");
    assert_eq!(off["error"], Value::Null);

    let (status, on) = body(
        app.put("/api/v2/nodes/p1.lab.example/power")
            .json(&json!({"action": "cycle", "next_boot": "pxe"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["state"], "on", "{on}");
    assert_eq!(
        actions(dir.path()),
        ["status", "boot_pxe", "cycle", "status"]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("next"))
            .unwrap()
            .trim(),
        "boot_pxe"
    );
    let log = std::fs::read_to_string(dir.path().join("actions.log")).unwrap();
    assert!(log.contains("p1.lab.example pdu-3/outlet-7 ops"), "{log}");

    // Stored, shown on the node, and a fact for the change of state.
    let (_, shown) = body(
        app.get("/api/v2/nodes/p1.lab.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["bmc"]["power"]["state"], "on", "{shown}");
    assert!(shown["bmc"]["power"]["checked_at"].is_string(), "{shown}");
    let trace: Vec<String> = app
        .state
        .orchestrator
        .trace()
        .entries()
        .iter()
        .map(|e| e.line())
        .collect();
    let trace = trace.join("\n");
    assert!(trace.contains("PowerStateChanged"), "{trace}");
    assert!(!trace.contains(PASSWORD));
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kiln_nodes_power{state=\"on\"} 1"),
        "{metrics}"
    );

    // Bad input, no BMC, a BMC that refuses.
    let (status, err) = body(
        app.put("/api/v2/nodes/p1.lab.example/power")
            .json(&json!({"action": "explode"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 400 || status == 422, "{err}");
    let (status, _) = body(
        app.post("/api/v2/nodes")
            .json(&json!({"name": "p2.lab.example", "bmc": {
        "driver": "command", "username": "ops", "password": "not-the-password"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, err) = body(
        app.put("/api/v2/nodes/p2.lab.example/power")
            .json(&json!({"action": "on"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"]["code"], "bmc_failed");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("login refused for ops"), "{err}");
    assert!(!message.contains("not-the-password"), "{err}");
    let (status, reading) = body(
        app.get("/api/v2/nodes/p2.lab.example/power")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reading["state"], "unknown");
    assert!(
        reading["error"].as_str().unwrap().contains("login refused"),
        "{reading}"
    );
    let (status, err) = body(
        app.post("/api/v2/nodes")
            .json(&json!({"name": "p3.lab.example", "bmc": {"driver": "none"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{err}");
    let (status, err) = body(
        app.get("/api/v2/nodes/p3.lab.example/power")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{err}");
});

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "127.0.98.0/24"
router = "127.0.98.1"
domain = "lab.example"

[[bootenv]]
name = "ubuntu-24.04-install"
kernel = "ubuntu-24.04/linux"
initrd = "ubuntu-24.04/initrd.gz"
append = "kiln.node={{node_name}}"

[[node]]
name = "admin.lab.example"
admin = true
alive = true
bootenv = "local"
interfaces = [{ mac = "52:54:00:98:00:01", ip = "127.0.98.1" }]

[[node]]
name = "n1.lab.example"
alive = true
interfaces = [{ mac = "52:54:00:98:00:11", ip = "127.0.98.11" }]
bmc = { driver = "command", address = "pdu-1/4", username = "ops", password = "@PASSWORD@" }

[[deployment]]
name = "system"
commit = true
bindings = [{ role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] }]

[[deployment]]
name = "ubuntu"
commit = true
bindings = [{ role = "provisioner-os-install", nodes = ["n1.lab.example"] }]
"#;

/// Starts kiln on `test_db` with the cluster file (password `password`)
/// and the PDU script; returns the app.
async fn start_cluster(test_db: &common::TestDb, dir: &Path, password: &str) -> String {
    let script = pdu(dir);
    let file = dir.join("cluster.toml");
    std::fs::write(&file, CLUSTER.replace("@PASSWORD@", password)).unwrap();
    let mut settings = common::test_settings(test_db);
    with_key(&mut settings);
    settings.cluster.builtin_roles = true;
    settings.power.command = script.display().to_string();
    settings.sim.reboot_delay_ms = 100;
    settings.provisioner.install_timeout_ms = 60_000;
    let app = Application::build_with_cluster(settings, Some(&file))
        .await
        .expect("kiln starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    common::stop_at_end(app.stopper());
    actix_web::rt::spawn(app.run_until_stopped());
    common::report_inventory(&base, "n1.lab.example").await;
    base
}

async fn install_noderole(client: &reqwest::Client, base: &str) -> Value {
    let nrs: Value = client
        .get(format!(
            "{base}/api/v2/noderoles?node=n1.lab.example&role=provisioner-os-install"
        ))
        .bearer_auth(common::TEST_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    nrs[0].clone()
}

on_both_databases!(the_install_reboots_through_the_bmc, |backend| async move {
    let test_db = common::TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let base = start_cluster(&test_db, dir.path(), PASSWORD).await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !actions(dir.path()).contains(&"cycle".to_string()) {
        let nr = install_noderole(&client, &base).await;
        assert_ne!(nr["state"], "error", "{nr}");
        assert!(
            Instant::now() < deadline,
            "never cycled: {:?} {nr}",
            actions(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The power command is only asked to cycle (a PDU has no boot device).
    let done = actions(dir.path());
    assert_eq!(done.iter().filter(|a| *a == "cycle").count(), 1, "{done:?}");
    assert!(!done.contains(&"boot_pxe".to_string()), "{done:?}");
});

on_both_databases!(
    a_bmc_that_refuses_the_reboot_fails_the_install,
    |backend| async move {
        let test_db = common::TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let base = start_cluster(&test_db, dir.path(), "a-stale-password").await;
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let nr = loop {
            let nr = install_noderole(&client, &base).await;
            if nr["state"] == "error" {
                break nr;
            }
            assert!(Instant::now() < deadline, "the install never failed: {nr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let id = nr["id"].as_i64().unwrap();
        let detail: Value = client
            .get(format!("{base}/api/v2/noderoles/{id}"))
            .bearer_auth(common::TEST_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let runlog = detail["runlog"].as_str().unwrap_or_default();
        assert!(
            runlog.contains("the reboot into the installer failed"),
            "{detail}"
        );
        assert!(runlog.contains("login refused for ops"), "{detail}");
        assert!(!runlog.contains("a-stale-password"), "{detail}");
    }
);
