//! No BMC password leaves kiln: with passwords set through the API and a
//! cluster file, power actions that pass and fail, and an install's reboot
//! through the BMC, neither password appears in any API response, the event
//! stream, the log (at debug level), the actor trace, the exported files or
//! an error message. (One test per binary: the log subscriber is global.)

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln::app::Application;
use serde_json::{json, Value};

const KEY: &str = "secrets-test-key-of-some-length";
const API_PASSWORD: &str = "ApiBmcPw-93kd";
const FILE_PASSWORD: &str = "FileBmcPw-71xq";

/// Everything the log subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pdu(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("pdu.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$KILN_BMC_PASSWORD\" != \"{API_PASSWORD}\" ] && [ \"$KILN_BMC_PASSWORD\" != \"{FILE_PASSWORD}\" ]; then echo refused >&2; exit 1; fi\n\
             case \"$KILN_POWER_ACTION\" in status) echo on ;; esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "127.0.97.0/24"
router = "127.0.97.1"
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
interfaces = [{ mac = "52:54:00:97:00:01", ip = "127.0.97.1" }]

[[node]]
name = "n1.lab.example"
alive = true
interfaces = [{ mac = "52:54:00:97:00:11", ip = "127.0.97.11" }]
bmc = { driver = "command", address = "pdu-1/4", username = "ops", password = "@PASSWORD@" }

[[deployment]]
name = "system"
commit = true
bindings = [
  { role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] },
  { role = "provisioner-dns-database", nodes = ["admin.lab.example"] },
]

[[deployment]]
name = "ubuntu"
commit = true
bindings = [{ role = "provisioner-os-install", nodes = ["n1.lab.example"] }]
"#;

fn assert_clean(what: &str, text: &str) {
    for password in [API_PASSWORD, FILE_PASSWORD] {
        assert!(
            !text.contains(password),
            "{what} carries a BMC password:\n{text}"
        );
    }
}

#[test]
fn no_bmc_password_leaves_kiln() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn,hyper=info,reqwest=info,h2=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    common::in_actix_system(async move {
        let test_db = common::TestDb::new(kiln::db::Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster.toml");
        std::fs::write(&file, CLUSTER.replace("@PASSWORD@", FILE_PASSWORD)).unwrap();
        let mut settings = common::test_settings(&test_db);
        settings.bmc.secret_key = KEY.into();
        settings.bmc.poll_interval_ms = 50;
        settings.cluster.builtin_roles = true;
        settings.power.command = pdu(dir.path()).display().to_string();
        settings.sim.reboot_delay_ms = 50;
        let export_dir = settings.provisioner.export_dir.clone();
        let app = Application::build_with_cluster(settings, Some(&file))
            .await
            .expect("kiln starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        common::stop_at_end(app.stopper());
        actix_web::rt::spawn(app.run_until_stopped());
        common::report_inventory(&base, "n1.lab.example").await;
        let client = reqwest::Client::new();
        let mut responses = String::new();
        let events = client
            .get(format!("{base}/api/v2/events?token={}", common::TEST_TOKEN))
            .send()
            .await
            .unwrap();
        let mut stream = events.bytes_stream();

        let mut call = async |method: reqwest::Method, path: &str, body: Option<Value>| -> Value {
            let mut req = client
                .request(method, format!("{base}{path}"))
                .bearer_auth(common::TEST_TOKEN);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let text = req.send().await.unwrap().text().await.unwrap();
            responses.push_str(&text);
            responses.push('\n');
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        call(
            reqwest::Method::POST,
            "/api/v2/nodes",
            Some(json!({"name": "n2.lab.example",
            "bmc": {"driver": "command", "username": "ops", "password": API_PASSWORD}})),
        )
        .await;
        call(reqwest::Method::POST, "/api/v2/nodes", Some(json!({"name": "n3.lab.example",
            "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "ops", "password": API_PASSWORD}}))).await;
        call(
            reqwest::Method::PUT,
            "/api/v2/nodes/n2.lab.example/power",
            Some(json!({"action": "cycle", "next_boot": "pxe"})),
        )
        .await;
        call(
            reqwest::Method::PUT,
            "/api/v2/nodes/n3.lab.example/power",
            Some(json!({"action": "on"})),
        )
        .await;
        call(
            reqwest::Method::PUT,
            "/api/v2/nodes/n2.lab.example",
            Some(json!({"bmc": {"driver": "command", "username": "ops"}})),
        )
        .await;
        // The install reboots n1 through its BMC (the file's password).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let node = call(reqwest::Method::GET, "/api/v2/nodes/n1.lab.example", None).await;
            if node["bootenv"] == "ubuntu-24.04-install"
                && node["bmc"]["power"]["checked_at"].is_string()
            {
                break;
            }
            assert!(Instant::now() < deadline, "n1 was never rebooted: {node}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for path in [
            "/api/v2/nodes",
            "/api/v2/noderoles",
            "/api/v2/runs",
            "/api/v2/openapi.json",
            "/metrics",
            "/api/v2/nodes/n1.lab.example/power",
            "/api/v2/nodes/n3.lab.example/power",
        ] {
            call(reqwest::Method::GET, path, None).await;
        }
        assert!(responses.contains("password_set"), "{responses}");
        assert_clean("an API response", &responses);

        let mut seen = String::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(500), stream.next()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains("PowerStateChanged"), "{seen}");
        assert_clean("the event stream", &seen);

        let trace: Vec<String> = state
            .orchestrator
            .trace()
            .entries()
            .iter()
            .map(|e| e.line())
            .collect();
        assert!(!trace.is_empty());
        assert_clean("the trace", &trace.join("\n"));

        let mut exported = 0;
        for entry in walk(&export_dir) {
            exported += 1;
            assert_clean(
                &entry.display().to_string(),
                &std::fs::read_to_string(&entry).unwrap_or_default(),
            );
        }
        assert!(exported > 0, "no exports in {}", export_dir.display());

        let row = kiln::db::bmcs::get(&state.db, 2).await.unwrap();
        assert_clean("the database row", &format!("{row:?}"));
    });
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).to_string();
    assert!(
        text.contains("power action"),
        "the log was not captured: {text}"
    );
    assert_clean("the log", &text);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
