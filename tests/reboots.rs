//! Reboots a role schedules: the power command cycles the machine after the
//! delay, and a machine that never comes back puts the noderole that
//! rebooted it into error, with what kiln last saw of it in the runlog; a
//! retry of that noderole reboots the machine again. Applying a cluster
//! file again leaves a node's runtime state (down, on its installer) alone.

mod common;

use std::time::{Duration, Instant};

use kiln::app::Application;
use kiln::cluster;
use serde_json::{json, Value};

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "127.0.99.0/24"
router = "127.0.99.1"
domain = "lab.example"

[[bootenv]]
name = "ubuntu-24.04-install"
kernel = "ubuntu-24.04/linux"
initrd = "ubuntu-24.04/initrd.gz"
append = "kiln.node={{node_name}} kiln.token={{node_token}}"

[[node]]
name = "admin.lab.example"
admin = true
alive = true
bootenv = "local"
interfaces = [{ mac = "52:54:00:99:00:01", ip = "127.0.99.1" }]

[[node]]
name = "n1.lab.example"
alive = true
interfaces = [{ mac = "52:54:00:99:00:11", ip = "127.0.99.11" }]

[[deployment]]
name = "system"
commit = true
bindings = [{ role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] }]
"#;

/// Applies a cluster file's text (with kiln's builtin roles) to `db`.
async fn apply_cluster(db: &sea_orm::DatabaseConnection, text: &str) {
    let file = cluster::with_builtin_roles(
        cluster::parse(text, std::path::Path::new("reboots.toml")).unwrap(),
    )
    .unwrap();
    cluster::apply(db, &file, false).await.unwrap();
}

/// A noderole as the API shows it.
async fn noderole(client: &reqwest::Client, base: &str, id: i64) -> Value {
    client
        .get(format!("{base}/api/v2/noderoles/{id}"))
        .bearer_auth(common::TEST_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the noderole until it is in error; fails with `what` at `deadline`.
async fn wait_for_error(
    client: &reqwest::Client,
    base: &str,
    id: i64,
    deadline: Instant,
    what: &str,
) -> Value {
    loop {
        let nr = noderole(client, base, id).await;
        if nr["state"] == "error" {
            return nr;
        }
        assert!(Instant::now() < deadline, "{what}: {nr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A power command that records each cycle in `power.log`, in `dir`.
fn recording_power_command(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let record = dir.join("power.log");
    let command = dir.join("power.sh");
    std::fs::write(
        &command,
        format!(
            "#!/bin/sh\necho \"$KILN_POWER_ACTION $KILN_NODE $KILN_MAC\" >> {}\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &command,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    (command, record)
}

/// kiln with `command` as its power command, a 200 ms reboot delay and a
/// 1.5 s install timeout; returns its base URL.
async fn start_with_power(test_db: &common::TestDb, command: &std::path::Path) -> String {
    let mut settings = common::test_settings(test_db);
    settings.sim.reboot_delay_ms = 200;
    settings.power.command = command.display().to_string();
    settings.provisioner.install_timeout_ms = 1500;
    let app = Application::build(settings).await.expect("kiln starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    common::stop_at_end(app.stopper());
    actix_web::rt::spawn(app.run_until_stopped());
    common::report_inventory(&base, "n1.lab.example").await;
    base
}

/// Binds n1 to provisioner-os-install in a new deployment `ubuntu` and
/// commits it; returns the noderole's id.
async fn install_n1(client: &reqwest::Client, base: &str) -> i64 {
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(common::TEST_TOKEN);
    let resp = admin(client.post(format!("{base}/api/v2/deployments")))
        .json(&json!({"name": "ubuntu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = admin(client.post(format!("{base}/api/v2/noderoles")))
        .json(&json!({"node": "n1.lab.example", "role": "provisioner-os-install", "deployment": "ubuntu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let noderole: Value = resp.json().await.unwrap();
    let resp = admin(client.put(format!("{base}/api/v2/deployments/ubuntu/commit")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    noderole["id"].as_i64().unwrap()
}

/// Waits until the power command recorded `cycles` cycles; fails with what
/// kiln shows at `deadline`.
async fn wait_for_cycles(
    client: &reqwest::Client,
    base: &str,
    record: &std::path::Path,
    cycles: usize,
    deadline: Instant,
) -> String {
    loop {
        let log = std::fs::read_to_string(record).unwrap_or_default();
        if log.lines().count() >= cycles {
            return log;
        }
        if Instant::now() >= deadline {
            let mut shown = String::new();
            for path in ["anneal", "runs", "noderoles", "nodes"] {
                let text = client
                    .get(format!("{base}/api/v2/{path}"))
                    .bearer_auth(common::TEST_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                shown.push_str(&format!("{path}: {text}\n"));
            }
            panic!(
                "the power command ran {} of {cycles} times\n{shown}",
                log.lines().count()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_databases!(
    a_machine_that_never_returns_fails_its_install,
    |backend| async move {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        apply_cluster(&db, CLUSTER).await;
        let dir = tempfile::tempdir().unwrap();
        let (command, record) = recording_power_command(dir.path());
        let base = start_with_power(&test_db, &command).await;
        let client = reqwest::Client::new();
        let id = install_n1(&client, &base).await;

        // The machine is power-cycled and fetches its installer's script,
        // then is never heard of again.
        let deadline = Instant::now() + Duration::from_secs(30);
        let cycles = wait_for_cycles(&client, &base, &record, 1, deadline).await;
        assert_eq!(cycles, "cycle n1.lab.example 52:54:00:99:00:11\n");
        // From the machine's own address: the boot routes answer no other.
        let machine = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 99, 11]))
            .build()
            .unwrap();
        let script = machine
            .get(format!("{base}/boot/52:54:00:99:00:11.ipxe"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(script.contains("ubuntu-24.04/linux"), "{script}");

        let noderole =
            wait_for_error(&client, &base, id, deadline, "the install never timed out").await;
        let runlog = noderole["runlog"].as_str().unwrap();
        assert!(
            runlog.contains("n1.lab.example did not come back alive within 1s"),
            "{runlog}"
        );
        assert!(
            runlog.contains(
                "last boot script served: boot script for bootenv ubuntu-24.04-install at "
            ),
            "{runlog}"
        );
        assert!(runlog.contains("last DHCP answer: none"), "{runlog}");
        assert!(
            kiln::db::reboots::pending(&db).await.unwrap().is_empty(),
            "the performed reboot's row is gone"
        );
    }
);

on_both_databases!(
    retrying_an_install_whose_machine_never_returned_reboots_it_again,
    |backend| async move {
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        apply_cluster(&db, CLUSTER).await;
        let dir = tempfile::tempdir().unwrap();
        let (command, record) = recording_power_command(dir.path());
        let base = start_with_power(&test_db, &command).await;
        let client = reqwest::Client::new();
        let id = install_n1(&client, &base).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        wait_for_error(&client, &base, id, deadline, "the install never timed out").await;
        assert_eq!(std::fs::read_to_string(&record).unwrap().lines().count(), 1);

        let resp = client
            .put(format!("{base}/api/v2/noderoles/{id}/retry"))
            .bearer_auth(common::TEST_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        // The install runs again: a new reboot, performed by the power
        // command, and the machine is awaited (and given up on) again.
        let cycles = wait_for_cycles(&client, &base, &record, 2, deadline).await;
        assert_eq!(
            cycles,
            "cycle n1.lab.example 52:54:00:99:00:11\ncycle n1.lab.example 52:54:00:99:00:11\n"
        );
        let failed = wait_for_error(
            &client,
            &base,
            id,
            deadline,
            "the retried install was never given up on",
        )
        .await;
        assert_eq!(failed["run_count"], 1, "{failed}");
        let node: Value = client
            .get(format!("{base}/api/v2/nodes/n1.lab.example"))
            .bearer_auth(common::TEST_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(node["alive"], false, "{node}");
        assert_eq!(node["bootenv"], "ubuntu-24.04-install", "{node}");
        let runs: Value = client
            .get(format!("{base}/api/v2/runs?node=n1.lab.example"))
            .bearer_auth(common::TEST_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let installs = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["noderole_id"] == id)
            .count();
        assert_eq!(installs, 2, "{runs}");
    }
);

on_both_databases!(
    applying_a_cluster_file_keeps_a_nodes_runtime_state_unless_forced,
    |backend| async move {
        use kiln::db::nodes::{self, NodeChange};
        use kiln::db::Key;
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        apply_cluster(&db, CLUSTER).await;
        let n1 = Key::Name("n1.lab.example".into());
        // What the machine's reboot into its installer left.
        let down = NodeChange {
            alive: Some(false),
            bootenv: Some("ubuntu-24.04-install".into()),
            ..Default::default()
        };
        nodes::update(&db, &n1, &down).await.unwrap();

        // The same file again (it says `alive = true`): the node stays down.
        apply_cluster(&db, CLUSTER).await;
        let node = nodes::get(&db, &n1).await.unwrap();
        assert!(!node.alive);
        assert_eq!(node.bootenv, "ubuntu-24.04-install");

        // `force = true` on the node applies them.
        let forced = CLUSTER.replace(
            "name = \"n1.lab.example\"\nalive = true\n",
            "name = \"n1.lab.example\"\nalive = true\nbootenv = \"sledgehammer\"\nforce = true\n",
        );
        assert_ne!(forced, CLUSTER);
        apply_cluster(&db, &forced).await;
        let node = nodes::get(&db, &n1).await.unwrap();
        assert!(node.alive);
        assert_eq!(node.bootenv, "sledgehammer");
    }
);

const MID_INSTALL_CLUSTER: &str = r#"
[[node]]
name = "n2.lab.example"
alive = true
interfaces = [{ mac = "52:54:00:99:00:12", ip = "127.0.99.12" }]

[[deployment]]
name = "ubuntu"
bindings = [{ role = "provisioner-os-install", nodes = ["n1.lab.example", "n2.lab.example"] }]
"#;

/// Puts `node` where a kiln that stopped mid-install leaves it: its
/// os-install noderole active with the reboot it scheduled `ago`, the
/// machine down, booting `bootenv`.
async fn leave_mid_install(
    db: &sea_orm::DatabaseConnection,
    node: &str,
    bootenv: &str,
    ago: Duration,
) -> i64 {
    use entity::{node, noderole, role};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let n = node::Entity::find()
        .filter(node::Column::Name.eq(node))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let r = role::Entity::find()
        .filter(role::Column::Name.eq("provisioner-os-install"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    node::Entity::update_many()
        .col_expr(node::Column::Alive, Expr::value(false))
        .col_expr(node::Column::Bootenv, Expr::value(bootenv))
        .filter(node::Column::Id.eq(n.id))
        .exec(db)
        .await
        .unwrap();
    let finished = chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap();
    let nr = noderole::Entity::find()
        .filter(noderole::Column::NodeId.eq(n.id))
        .filter(noderole::Column::RoleId.eq(r.id))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    noderole::Entity::update_many()
        .col_expr(noderole::Column::State, Expr::value("active"))
        .col_expr(noderole::Column::RunCount, Expr::value(1))
        .col_expr(
            noderole::Column::Wall,
            Expr::value(json!({ "reboot_scheduled_ms": 200 })),
        )
        .col_expr(noderole::Column::UpdatedAt, Expr::value(finished))
        .filter(noderole::Column::Id.eq(nr.id))
        .exec(db)
        .await
        .unwrap();
    nr.id
}

on_both_databases!(
    a_restarted_kiln_still_fails_a_machine_that_never_returns,
    |backend| async move {
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        apply_cluster(&db, &format!("{CLUSTER}{MID_INSTALL_CLUSTER}")).await;
        // n1 was rebooted into its installer long enough ago that its
        // deadline passed while kiln was down; n2 is down too, but on its
        // local disk (powered off after its install): not kiln's to fail.
        let installing = leave_mid_install(
            &db,
            "n1.lab.example",
            "ubuntu-24.04-install",
            Duration::from_secs(5),
        )
        .await;
        let powered_off =
            leave_mid_install(&db, "n2.lab.example", "local", Duration::from_secs(5)).await;

        let mut settings = common::test_settings(&test_db);
        settings.provisioner.install_timeout_ms = 1500;
        let app = Application::build(settings).await.expect("kiln starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        common::stop_at_end(app.stopper());
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let failed = wait_for_error(
            &client,
            &base,
            installing,
            deadline,
            "the restarted kiln never failed the install",
        )
        .await;
        let runlog = failed["runlog"].as_str().unwrap();
        assert!(
            runlog.contains("n1.lab.example did not come back alive within 1s"),
            "{runlog}"
        );
        // Well past any deadline of n2's: still active.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            noderole(&client, &base, powered_off).await["state"],
            "active"
        );
    }
);
