//! `kiln bench seed`: the seed's OS install on many simulated machines that
//! boot through kiln's DHCP server, boot scripts and callbacks — from the
//! commit until every machine is alive again on its disk, and how much of
//! that its runs spent waiting for one of the global slots.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{scratch::Scratch, BenchError, Report, Row};
use crate::app::Application;
use crate::cluster;
use crate::db::{self, deployments, noderoles, Backend, Key};
use crate::domain::binding::{bind, BindRequest};
use crate::settings::Settings;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SeedParams {
    pub nodes: usize,
    pub cap: usize,
    pub reboot_delay_ms: u64,
    pub install_ms: u64,
    pub backend: Backend,
    pub postgres_server: String,
}

/// Commit-to-alive time against the ideal for the slots available.
pub async fn run(params: &SeedParams) -> Result<Report, BenchError> {
    if params.nodes > 60_000 {
        return Err(BenchError::Setup("seed supports up to 60000 nodes".into()));
    }
    let scratch = Scratch::create(params.backend, &params.postgres_server, 10).await?;
    let export = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let result = measure(&scratch, export.path(), params).await;
    scratch.remove().await;
    let (elapsed, runs) = result?;
    let machine = Duration::from_millis(params.reboot_delay_ms + 2 * params.install_ms);
    let ideal = runs.busy / params.cap.max(1) as u32 + machine;
    let waited_share = runs.waiting.as_secs_f64() / (runs.waiting + runs.busy).as_secs_f64();
    Ok(Report {
        name: "seed".into(),
        rows: vec![
            Row::new("commit to all alive")
                .with("seconds", format!("{:.2}", elapsed.as_secs_f64())),
            Row::new("ideal with the slots")
                .with("seconds", format!("{:.2}", ideal.as_secs_f64())),
            Row::new("runs")
                .with("count", runs.count)
                .with("busy s", format!("{:.2}", runs.busy.as_secs_f64()))
                .with("waiting s", format!("{:.2}", runs.waiting.as_secs_f64()))
                .with("waiting share", format!("{:.2}", waited_share)),
        ],
        ratio: elapsed.as_secs_f64() / ideal.as_secs_f64(),
        target: "none".into(),
        notes: vec![
            format!(
                "{} simulated machines, cap {}, reboot delay {} ms, install {} ms, {:?}",
                params.nodes, params.cap, params.reboot_delay_ms, params.install_ms, params.backend
            ),
            "ideal = the runs' busy time spread over the slots + one machine's reboot and install time".into(),
            "waiting share = time runs spent queued / (queued + running)".into(),
        ],
    })
}

/// Totals over the runs started by the commit.
struct RunTotals {
    count: usize,
    busy: Duration,
    waiting: Duration,
}

async fn measure(
    scratch: &Scratch,
    export_dir: &std::path::Path,
    params: &SeedParams,
) -> Result<(Duration, RunTotals), BenchError> {
    let file = cluster::parse(
        &cluster_text(params.nodes),
        std::path::Path::new("bench-seed.toml"),
    )
    .and_then(cluster::with_builtin_roles)
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    cluster::apply(&scratch.db, &file, false)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let app = Application::build(settings(scratch, export_dir, params)?)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let orchestrator = app.state().orchestrator.clone();
    let stopper = app.stopper();
    actix::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    let db = &scratch.db;
    wait_until(
        db,
        Duration::from_secs(600),
        "the cluster to settle",
        settled,
    )
    .await?;
    bind_install(db, params.nodes).await?;
    let committed_at = Utc::now();
    let started = Instant::now();
    orchestrator
        .commit_deployment(&Key::Name("install".into()))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let timeout =
        Duration::from_secs(120) + Duration::from_millis(params.install_ms) * params.nodes as u32;
    wait_until(
        db,
        timeout,
        "every machine alive on local",
        |db| async move {
            let waiting = db::bench::nodes_not_alive_on_disk(&db).await?;
            Ok(waiting == 0 && settled(db).await?)
        },
    )
    .await?;
    let elapsed = started.elapsed();
    let totals = run_totals(db, committed_at).await?;
    // The last bootenv changes may still be re-running the DHCP database:
    // stop kiln (and wait for it) before the scratch database is dropped.
    stopper.stop().await;
    Ok((elapsed, totals))
}

fn settings(
    scratch: &Scratch,
    export_dir: &std::path::Path,
    params: &SeedParams,
) -> Result<Settings, BenchError> {
    let mut settings = Settings::load(None).map_err(|e| BenchError::Setup(e.to_string()))?;
    settings.database.url = scratch.url.clone();
    settings.http.bind = "127.0.0.1:0".into();
    settings.auth.admin_token = String::new();
    settings.cluster.builtin_roles = false;
    settings.scheduler.max_concurrent_runs = params.cap;
    settings.dhcp.enabled = true;
    settings.dhcp.address = "127.0.0.1".into();
    settings.dhcp.port = 0;
    settings.dhcp.interface = String::new();
    settings.tftp.enabled = false;
    settings.sim.enabled = true;
    // As `serve --simulate`: the machines' 10.98.x.y addresses are not on
    // this host, so they call from loopback.
    settings.auth.boot_address_check = false;
    settings.sim.reboot_delay_ms = params.reboot_delay_ms;
    settings.sim.install_ms = params.install_ms;
    settings.power.command = String::new();
    settings.provisioner.export_dir = export_dir.to_path_buf();
    settings.jigs.trace_capacity = 0;
    Ok(settings)
}

/// An admin node with the provisioner roles, and `nodes` machines with
/// fixed addresses on one /16.
fn cluster_text(nodes: usize) -> String {
    let mut text = String::from(
        r#"
[[network]]
name = "bench"
subnet = "10.98.0.0/16"
router = "10.98.0.1"
dns = ["10.98.0.1"]
domain = "bench.example"
pool = ["10.98.250.1", "10.98.250.250"]

[[bootenv]]
name = "ubuntu-24.04-install"
kernel = "ubuntu-24.04/linux"
initrd = "ubuntu-24.04/initrd.gz"
append = "kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}"

[[node]]
name = "admin.bench.example"
admin = true
alive = true
bootenv = "local"
interfaces = [{ mac = "52:54:ff:00:00:01", ip = "10.98.0.1" }]

[[deployment]]
name = "system"
commit = true
bindings = [
  { role = "provisioner-dhcp-database", nodes = ["admin.bench.example"] },
  { role = "provisioner-dns-database", nodes = ["admin.bench.example"] },
]
"#,
    );
    for n in 0..nodes {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{}\"\nalive = true\ninterfaces = [{{ mac = \"{}\", ip = \"10.98.{}.{}\" }}]\n",
            super::fleet::node_name(n),
            super::fleet::node_mac(n),
            1 + n / 250,
            1 + n % 250,
        ));
    }
    text
}

/// The operator's deployment: provisioner-os-install on every machine.
async fn bind_install(db: &DatabaseConnection, nodes: usize) -> Result<(), BenchError> {
    let setup = |e: crate::domain::DomainError| BenchError::Setup(e.to_string());
    let txn = db.begin().await?;
    deployments::create(&txn, "install", None, "")
        .await
        .map_err(|e| setup(e.into()))?;
    for n in 0..nodes {
        bind(
            &txn,
            &BindRequest {
                node: Key::Name(super::fleet::node_name(n)),
                role: Key::Name("provisioner-os-install".into()),
                deployment: Key::Name("install".into()),
                data: None,
            },
        )
        .await
        .map_err(setup)?;
    }
    txn.commit().await?;
    Ok(())
}

/// Nothing left to do: no noderole todo or in transition.
async fn settled(db: DatabaseConnection) -> Result<bool, BenchError> {
    let counts = noderoles::count_by_state(&db)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(!crate::domain::anneal::work_remains(&counts))
}

async fn wait_until<F, Fut>(
    db: &DatabaseConnection,
    timeout: Duration,
    what: &str,
    mut done: F,
) -> Result<(), BenchError>
where
    F: FnMut(DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = Result<bool, BenchError>>,
{
    let deadline = Instant::now() + timeout;
    while !done(db.clone()).await? {
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn run_totals(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> Result<RunTotals, BenchError> {
    let runs = db::bench::runs_queued_since(db, since).await?;
    let mut totals = RunTotals {
        count: 0,
        busy: Duration::ZERO,
        waiting: Duration::ZERO,
    };
    for r in runs {
        let (Some(started), Some(finished)) = (r.started_at, r.finished_at) else {
            continue;
        };
        totals.count += 1;
        totals.busy += (finished - started).to_std().unwrap_or_default();
        totals.waiting += (started - r.queued_at).to_std().unwrap_or_default();
    }
    Ok(totals)
}
