//! kill -9 during the reboot delay: the real `kiln serve --simulate` binary
//! schedules its simulated machines' reboots into the installer and is
//! killed before any is due. Restarted (with the same `--cluster` file, or
//! without one), it must perform every reboot still owed, so each machine
//! installs and comes back alive on `local` within the reboot delay plus
//! the install time — not after the install watchdog gives up on it, and
//! not never (the cluster file's `alive = true` must not make a machine
//! halfway to its installer look healthy).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::KilnProcess;
use serde_json::Value;

const NODES: usize = 6;
const REBOOT_DELAY_MS: u64 = 6000;
/// A simulated installer's time; a machine takes it twice (the install,
/// then the installer's own reboot).
const INSTALL_MS: u64 = 300;
/// What a restarted kiln may spend on starting (migrating, applying the
/// file, binding) and on the DHCP database runs between the boots, on a
/// shared, loaded machine.
const START_MARGIN: Duration = Duration::from_secs(10);

fn cluster_file() -> String {
    let mut text = String::from(
        r#"
[[network]]
name = "lab"
subnet = "10.99.0.0/24"
router = "10.99.0.1"
domain = "lab.example"
pool = ["10.99.0.100", "10.99.0.199"]

[[bootenv]]
name = "ubuntu-24.04-install"
kernel = "ubuntu-24.04/linux"
initrd = "ubuntu-24.04/initrd.gz"
append = "kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}"

[[node]]
name = "admin.lab.example"
admin = true
alive = true
bootenv = "local"
interfaces = [{ mac = "52:54:00:98:ff:01", ip = "10.99.0.1" }]
"#,
    );
    for i in 1..=NODES {
        text.push_str(&format!(
            "\n[[node]]\nname = \"n{i}.lab.example\"\nalive = true\n\
             interfaces = [{{ mac = \"52:54:00:98:00:{i:02x}\", ip = \"10.99.0.{}\" }}]\n",
            10 + i
        ));
    }
    let nodes: Vec<String> = (1..=NODES)
        .map(|i| format!("\"n{i}.lab.example\""))
        .collect();
    text.push_str(&format!(
        r#"
[[deployment]]
name = "system"
commit = true
bindings = [{{ role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] }}]

[[deployment]]
name = "ubuntu"
commit = true
bindings = [{{ role = "provisioner-os-install", nodes = [{}] }}]
"#,
        nodes.join(", ")
    ));
    text
}

/// A `kiln serve --simulate` process, killed when dropped.
struct Kiln {
    process: KilnProcess,
    base: String,
}

impl Kiln {
    /// Starts kiln on `db_url` in `dir`, with `cluster` if given, and waits
    /// until it says which port it listens on.
    async fn start(db_url: &str, dir: &Path, cluster: Option<&Path>) -> Kiln {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--simulate".as_ref()];
        if let Some(cluster) = cluster {
            args.extend(["--cluster".as_ref(), cluster.as_os_str()]);
        }
        let process = KilnProcess::serve(
            &args,
            dir,
            &[
                ("KILN_DATABASE__URL", db_url.to_string()),
                (
                    "KILN_PROVISIONER__EXPORT_DIR",
                    dir.join("export").display().to_string(),
                ),
                ("KILN_SIM__REBOOT_DELAY_MS", REBOOT_DELAY_MS.to_string()),
                ("KILN_SIM__INSTALL_MS", INSTALL_MS.to_string()),
            ],
        );
        let port = process.port().await;
        Kiln {
            process,
            base: format!("http://127.0.0.1:{port}/api/v2"),
        }
    }

    async fn kill_9(self) {
        self.process.kill_9().await;
    }

    fn log(&self) -> String {
        self.process.log()
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
            .json()
            .await
            .unwrap()
    }

    /// Polls `/anneal` until it answers 200 (nothing left to do).
    async fn wait_until_settled(&self, deadline: Instant) {
        loop {
            let resp = reqwest::get(format!("{}/anneal", self.base)).await.unwrap();
            if resp.status() == 200 {
                return;
            }
            let status = resp.text().await.unwrap();
            assert!(
                Instant::now() < deadline,
                "never settled: {status}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The simulated nodes (all but the admin node).
    async fn machines(&self) -> Vec<Value> {
        let nodes = self.get("/nodes?limit=1000").await;
        nodes
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["admin"] != true)
            .cloned()
            .collect()
    }

    /// Polls until `done` holds for every machine; fails naming `what`
    /// and the machines' state at `deadline`.
    async fn wait_for_machines(
        &self,
        what: &str,
        deadline: Instant,
        done: impl Fn(&Value) -> bool,
    ) {
        loop {
            let machines = self.machines().await;
            if machines.len() == NODES && machines.iter().all(&done) {
                return;
            }
            if Instant::now() >= deadline {
                let states: Vec<String> = machines
                    .iter()
                    .map(|n| {
                        format!(
                            "{} alive={} bootenv={}",
                            n["name"], n["alive"], n["bootenv"]
                        )
                    })
                    .collect();
                panic!(
                    "{what}: not by the deadline: {states:#?}\nkiln's log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn installing(node: &Value) -> bool {
    node["alive"] == false && node["bootenv"] == "ubuntu-24.04-install"
}

fn installed(node: &Value) -> bool {
    node["alive"] == true && node["bootenv"] == "local"
}

/// Whether the restart names the cluster file again.
#[derive(Clone, Copy, PartialEq)]
enum Restart {
    WithClusterFile,
    WithoutClusterFile,
}

async fn crash_during_reboot_delay(backend: kiln::db::Backend, restart: Restart) {
    let test_db = common::TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster: PathBuf = dir.path().join("cluster.toml");
    std::fs::write(&cluster, cluster_file()).unwrap();

    let kiln = Kiln::start(&test_db.url, dir.path(), Some(&cluster)).await;
    // Every install ran, and its hook sent the node to its installer: the
    // reboots are scheduled and none is due for REBOOT_DELAY_MS.
    let started = Instant::now();
    kiln.wait_for_machines(
        "every node on its way to the installer",
        started + Duration::from_secs(60),
        installing,
    )
    .await;
    kiln.kill_9().await;

    let db = test_db.connect().await;
    let owed = kiln::db::reboots::pending(&db).await.unwrap();
    assert_eq!(
        owed.len(),
        NODES,
        "the kill landed in the reboot delay: every reboot is still owed"
    );
    db.close().await.unwrap();

    let again = match restart {
        Restart::WithClusterFile => Some(cluster.as_path()),
        Restart::WithoutClusterFile => None,
    };
    let restarted = Instant::now();
    let kiln = Kiln::start(&test_db.url, dir.path(), again).await;
    let budget = Duration::from_millis(REBOOT_DELAY_MS + 2 * INSTALL_MS) + START_MARGIN;
    kiln.wait_for_machines(
        "every node installed and alive on local",
        restarted + budget,
        installed,
    )
    .await;
    let case = match restart {
        Restart::WithClusterFile => "with the same cluster file",
        Restart::WithoutClusterFile => "without a cluster file",
    };
    eprintln!(
        "{backend:?}, restart {case}: {NODES} nodes, {REBOOT_DELAY_MS} ms reboot delay: \
         all alive on local {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    // Back alive, each node's roles run again (the install is destructive:
    // marked active without running); once that settled, every install is
    // active.
    kiln.wait_until_settled(Instant::now() + Duration::from_secs(30))
        .await;
    let installs = kiln
        .get("/noderoles?role=provisioner-os-install&limit=1000")
        .await;
    for nr in installs.as_array().unwrap() {
        assert_eq!(nr["state"], "active", "{nr}");
    }
    kiln.kill_9().await;
    let db = test_db.connect().await;
    assert!(
        kiln::db::reboots::pending(&db).await.unwrap().is_empty(),
        "every reboot was performed and its row removed"
    );
    db.close().await.unwrap();
}

on_both_databases!(
    restart_with_the_same_cluster_file_performs_the_owed_reboots,
    |backend| async move { crash_during_reboot_delay(backend, Restart::WithClusterFile).await }
);

on_both_databases!(
    restart_without_a_cluster_file_performs_the_owed_reboots,
    |backend| async move { crash_during_reboot_delay(backend, Restart::WithoutClusterFile).await }
);
