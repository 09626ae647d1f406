//! Reboots a role schedules: the power command cycles the machine after the
//! delay, and a machine that never comes back puts the noderole that
//! rebooted it into error, with what kiln last saw of it in the runlog.

mod common;

use std::time::{Duration, Instant};

use kiln::app::Application;
use kiln::cluster;
use serde_json::{json, Value};

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "10.99.0.0/24"
router = "10.99.0.1"
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
interfaces = [{ mac = "52:54:00:99:00:01", ip = "10.99.0.1" }]

[[node]]
name = "n1.lab.example"
alive = true
interfaces = [{ mac = "52:54:00:99:00:11", ip = "10.99.0.11" }]

[[deployment]]
name = "system"
commit = true
bindings = [{ role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] }]
"#;

on_both_databases!(
    a_machine_that_never_returns_fails_its_install,
    |backend| async move {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        let file = cluster::with_builtin_roles(
            cluster::parse(CLUSTER, std::path::Path::new("reboots.toml")).unwrap(),
        )
        .unwrap();
        cluster::apply(&db, &file, false).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("power.log");
        let command = dir.path().join("power.sh");
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
        let mut settings = common::test_settings(&test_db);
        settings.sim.reboot_delay_ms = 200;
        settings.power.command = command.display().to_string();
        settings.provisioner.install_timeout_ms = 1500;
        let app = Application::build(settings).await.expect("kiln starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
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
        let id = noderole["id"].as_i64().unwrap();
        let resp = admin(client.put(format!("{base}/api/v2/deployments/ubuntu/commit")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        // The machine is power-cycled and fetches its installer's script,
        // then is never heard of again.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&record)
            .unwrap_or_default()
            .is_empty()
        {
            if Instant::now() >= deadline {
                let anneal = admin(client.get(format!("{base}/api/v2/anneal")))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let runs = admin(client.get(format!("{base}/api/v2/runs")))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let noderoles = admin(client.get(format!("{base}/api/v2/noderoles")))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                panic!("the power command never ran\nanneal: {anneal}\nruns: {runs}\nnoderoles: {noderoles}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            std::fs::read_to_string(&record).unwrap(),
            "cycle n1.lab.example 52:54:00:99:00:11\n"
        );
        let script = reqwest::get(format!("{base}/boot/52:54:00:99:00:11.ipxe"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(script.contains("ubuntu-24.04/linux"), "{script}");

        let noderole = loop {
            let nr: Value = admin(client.get(format!("{base}/api/v2/noderoles/{id}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if nr["state"] == "error" {
                break nr;
            }
            assert!(
                Instant::now() < deadline,
                "the install never timed out: {nr}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
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
    }
);
