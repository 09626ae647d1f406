//! `kiln bench api`: listing every node through kiln's HTTP API, page by
//! page, against the database answering the same pages as JSON itself —
//! the least work any server could do for that list.

use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{fleet, scratch::Scratch, BenchError, Report, Row};
use crate::app::Application;
use crate::db::{self, Backend};
use crate::settings::Settings;

/// The API's largest page.
const PAGE: usize = 1000;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ApiParams {
    pub nodes: usize,
    pub rounds: usize,
    pub backend: Backend,
    pub postgres_server: String,
}

/// Median time to list all nodes through kiln's API and with one JSON
/// query per page.
pub async fn run(params: &ApiParams) -> Result<Report, BenchError> {
    let scratch = Scratch::create(params.backend, &params.postgres_server, 10).await?;
    let result = measure(&scratch, params).await;
    scratch.remove().await;
    let (kiln, raw, kiln_bytes, raw_bytes) = result?;
    let pages = params.nodes.div_ceil(PAGE);
    let row = |label: &str, time: Duration, bytes: usize| {
        Row::new(label)
            .with("pages", pages)
            .with("bytes", bytes)
            .with("median ms", format!("{:.1}", time.as_secs_f64() * 1000.0))
    };
    Ok(Report {
        name: "api".into(),
        rows: vec![
            row("kiln GET /api/v2/nodes", kiln, kiln_bytes),
            row("database JSON query", raw, raw_bytes),
        ],
        ratio: kiln.as_secs_f64() / raw.as_secs_f64(),
        target: "<=3.0".into(),
        notes: vec![format!(
            "{} nodes with one interface each, pages of {PAGE}, median of {} rounds, {:?}; kiln over HTTP on loopback",
            params.nodes, params.rounds, params.backend
        )],
    })
}

async fn measure(
    scratch: &Scratch,
    params: &ApiParams,
) -> Result<(Duration, Duration, usize, usize), BenchError> {
    let txn = scratch.db.begin().await?;
    fleet::add_nodes(&txn, params.nodes, None).await?;
    txn.commit().await?;
    let base = start_kiln(scratch).await?;
    let http = reqwest::Client::new();
    let mut kiln_times = Vec::new();
    let mut raw_times = Vec::new();
    let (mut kiln_bytes, mut raw_bytes) = (0, 0);
    for _ in 0..params.rounds.max(1) {
        let started = Instant::now();
        kiln_bytes = list_through_api(&http, &base, params.nodes).await?;
        kiln_times.push(started.elapsed());
        let started = Instant::now();
        raw_bytes = list_as_json(&scratch.db, params.nodes).await?;
        raw_times.push(started.elapsed());
    }
    Ok((median(kiln_times), median(raw_times), kiln_bytes, raw_bytes))
}

/// kiln on the scratch database, HTTP on a free loopback port, nothing else.
async fn start_kiln(scratch: &Scratch) -> Result<String, BenchError> {
    let mut settings = Settings::load(None).map_err(|e| BenchError::Setup(e.to_string()))?;
    settings.database.url = scratch.url.clone();
    settings.http.bind = "127.0.0.1:0".into();
    settings.auth.admin_token = String::new();
    settings.cluster.builtin_roles = false;
    settings.dhcp.enabled = false;
    settings.tftp.enabled = false;
    settings.sim.enabled = false;
    settings.jigs.trace_capacity = 0;
    let app = Application::build(settings)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let base = format!("http://127.0.0.1:{}", app.port());
    actix::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    Ok(base)
}

async fn list_through_api(
    http: &reqwest::Client,
    base: &str,
    nodes: usize,
) -> Result<usize, BenchError> {
    let mut bytes = 0;
    for offset in (0..nodes).step_by(PAGE) {
        let body = http
            .get(format!("{base}/api/v2/nodes?limit={PAGE}&offset={offset}"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| BenchError::Setup(format!("GET /api/v2/nodes: {e}")))?
            .bytes()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        bytes += body.len();
    }
    Ok(bytes)
}

/// Each page of nodes, with their interfaces, as one JSON text the
/// database builds itself.
async fn list_as_json(db: &DatabaseConnection, nodes: usize) -> Result<usize, BenchError> {
    let mut bytes = 0;
    for offset in (0..nodes).step_by(PAGE) {
        let json = db::bench::nodes_page_as_json(db, PAGE as i64, offset as i64)
            .await?
            .ok_or_else(|| BenchError::Setup("the JSON query returned no row".into()))?;
        bytes += json.len();
    }
    Ok(bytes)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
