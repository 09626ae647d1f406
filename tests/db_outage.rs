//! PostgreSQL going away mid-anneal: a restart, then a 10 s stop, on a
//! cluster this test creates, owns and drops (the shared one is never
//! touched). Afterwards every noderole is active and none in error or
//! stuck; while the database is down the API answers 503 `unavailable`
//! (never 500), and `/health` is 200 within a second of it being back.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::orchestration::*;
use common::TEST_TOKEN;
use kiln::app::Application;
use kiln::db::roles::JigKind;
use kiln::db::Key;
use kiln::domain::NoderoleState;
use kiln::orchestrator::Orchestrator;
use kiln::settings::Settings;

const NODES: u32 = 300;
const ROLES: [&str; 3] = ["first", "second", "third"];
const STOP: Duration = Duration::from_secs(10);
const PG_VERSION: &str = "15";

/// A PostgreSQL cluster of this test's own on a spare port, trusting
/// 127.0.0.1, dropped (stopped first) when the guard goes, even when the
/// test fails.
struct OwnCluster {
    name: String,
    port: u16,
}

impl OwnCluster {
    fn create() -> Self {
        let port = spare_port();
        let cluster = Self {
            name: format!("kiln_outage_{}", std::process::id()),
            port,
        };
        pg(&[
            "pg_createcluster",
            PG_VERSION,
            &cluster.name,
            "--port",
            &port.to_string(),
            "--",
            "--auth=trust",
        ]);
        let hba = format!("/etc/postgresql/{PG_VERSION}/{}/pg_hba.conf", cluster.name);
        std::fs::write(
            &hba,
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        pg(&[
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            PG_VERSION,
            &cluster.name,
            "start",
        ]);
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctlcluster ACTION`, which returns once the server is up (or
    /// down), awaited so that kiln keeps running meanwhile.
    async fn ctl(&self, action: &str) {
        let status = tokio::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", PG_VERSION, &self.name, action])
            .status()
            .await
            .expect("pg_ctlcluster");
        assert!(status.success(), "pg_ctlcluster {action} failed: {status}");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args([PG_VERSION, &self.name, "--stop"])
            .status();
    }
}

fn pg(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(status.success(), "{args:?} failed: {status}");
}

/// A loopback port nothing listens on right now.
fn spare_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

fn settings(url: String, export_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::defaults();
    settings.database.url = url;
    settings.http.bind = "127.0.0.1:0".into();
    settings.auth.admin_token = TEST_TOKEN.into();
    settings.cluster.builtin_roles = false;
    settings.provisioner.export_dir = export_dir.to_path_buf();
    settings
}

/// Three chained noop roles, each node's chain its own.
async fn define_chain(db: &sea_orm::DatabaseConnection) {
    let mut specs = Vec::new();
    for (i, name) in ROLES.iter().enumerate() {
        let requires: Vec<&str> = ROLES[..i].iter().rev().take(1).copied().collect();
        let mut spec = role(name, JigKind::Noop, &requires);
        spec.implicit = true;
        specs.push(spec);
    }
    define_roles(db, &specs).await;
}

/// Waits until at least `n` noderoles are active.
async fn active_at_least(orch: &Orchestrator, n: i64) {
    loop {
        let counts = kiln::db::noderoles::count_by_state(orch.db())
            .await
            .expect("counts");
        if count(&counts, NoderoleState::Active) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One API answer: when it arrived (since the stop), which request, its
/// status and body.
struct Answer {
    arrived: Duration,
    request: &'static str,
    status: u16,
    body: String,
}

impl Answer {
    fn describe(&self) -> String {
        format!(
            "{} {} after {:?}: {}",
            self.request, self.status, self.arrived, self.body
        )
    }
}

/// Sends the three probes (a read, a write, `/health`) from `since` until
/// `until`, one of each in flight at a time.
async fn probe_until(address: &str, since: Instant, until: Instant) -> Vec<Answer> {
    let client = reqwest::Client::new();
    let probes = [
        (
            "GET /api/v2/nodes",
            client.get(format!("{address}/api/v2/nodes?limit=5")),
        ),
        (
            "PUT /api/v2/nodes/n0",
            client
                .put(format!("{address}/api/v2/nodes/n0.lab.example"))
                .json(&serde_json::json!({ "available": true })),
        ),
        ("GET /health", client.get(format!("{address}/health"))),
    ];
    let tasks = probes.map(|(request, builder)| async move {
        let mut answers = Vec::new();
        while Instant::now() < until {
            let sent = builder.try_clone().expect("clonable request");
            let response = sent
                .bearer_auth(TEST_TOKEN)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("kiln answers");
            let status = response.status().as_u16();
            let mut body = response.text().await.unwrap_or_default();
            body.truncate(200);
            answers.push(Answer {
                arrived: since.elapsed(),
                request,
                status,
                body,
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        answers
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// How long after `since` `/health` first answers 200.
async fn healthy_after(address: &str, since: Instant) -> Duration {
    let client = reqwest::Client::new();
    loop {
        let response = client
            .get(format!("{address}/health"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("kiln answers");
        if response.status() == 200 {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_unavailable(answer: &Answer) -> bool {
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&answer.body) else {
        return false;
    };
    answer.status == 503 && body["error"]["code"] == "unavailable"
}

#[test]
fn restart_and_stop_of_postgres_mid_anneal() {
    let cluster = OwnCluster::create();
    let cluster = &cluster;
    common::in_actix_system(async move {
        let export = tempfile::tempdir().expect("export dir");
        let app = Application::build(settings(cluster.url(), export.path()))
            .await
            .expect("kiln starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let orch = app.state().orchestrator.clone();
        common::stop_at_end(app.stopper());
        actix_web::rt::spawn(app.run_until_stopped());
        define_chain(orch.db()).await;
        kiln::db::deployments::create(orch.db(), "work", None, "")
            .await
            .unwrap();
        let names: Vec<String> = (0..NODES).map(|i| format!("n{i}.lab.example")).collect();
        for (i, name) in names.iter().enumerate() {
            add_node(&orch, name, i as u32 + 1, false).await;
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        bind_all(&orch, "work", "third", &refs).await;
        let total = i64::from(NODES) * ROLES.len() as i64;
        orch.commit_deployment(&Key::Name("work".into()))
            .await
            .unwrap();

        // (a) A restart a sixth of the way in.
        active_at_least(&orch, total / 6).await;
        cluster.ctl("restart").await;
        let healthy_after_restart = healthy_after(&address, Instant::now()).await;

        // (b) A 10 s stop halfway: the API says unavailable, never 500.
        active_at_least(&orch, total / 2).await;
        cluster.ctl("stop").await;
        let stopped = Instant::now();
        let restart_after_the_stop = async {
            tokio::time::sleep(STOP).await;
            cluster.ctl("start").await;
            stopped.elapsed()
        };
        let (answers, back) = futures::join!(
            probe_until(&address, stopped, stopped + STOP),
            restart_after_the_stop
        );
        let healthy = healthy_after(&address, stopped + back).await;
        // Until the start began, PostgreSQL was down; answers arriving while
        // it started may already be 200.
        let during: Vec<&Answer> = answers.iter().filter(|a| a.arrived < STOP).collect();
        let wrong: Vec<String> = during
            .iter()
            .filter(|a| !is_unavailable(a))
            .map(|a| a.describe())
            .collect();
        assert!(!during.is_empty(), "no answer during the stop");
        assert!(
            wrong.is_empty(),
            "answers other than 503 unavailable while PostgreSQL was stopped: {wrong:#?}"
        );
        let server_errors: Vec<String> = answers
            .iter()
            .filter(|a| a.status >= 500 && !is_unavailable(a))
            .map(Answer::describe)
            .collect();
        assert!(server_errors.is_empty(), "{server_errors:#?}");
        assert!(
            healthy_after_restart <= Duration::from_secs(1),
            "/health took {healthy_after_restart:?} to be 200 after PostgreSQL restarted"
        );
        assert!(
            healthy <= Duration::from_secs(1),
            "/health took {healthy:?} to be 200 after PostgreSQL started"
        );

        // Nothing in error, nothing stuck: every noderole active.
        let counts = settle(&orch, Duration::from_secs(300)).await;
        assert_eq!(count(&counts, NoderoleState::Error), 0, "{counts:?}");
        assert_eq!(count(&counts, NoderoleState::Blocked), 0, "{counts:?}");
        assert_eq!(count(&counts, NoderoleState::Active), total, "{counts:?}");
        println!(
            "outage survived: {NODES} nodes x {} roles, a restart and a {}s stop; \
             {} answers during the stop, all 503 unavailable; /health 200 {} ms after the \
             restart and {} ms after the start; {total} noderoles active, 0 in error",
            ROLES.len(),
            STOP.as_secs(),
            during.len(),
            healthy_after_restart.as_millis(),
            healthy.as_millis(),
        );
    });
}
