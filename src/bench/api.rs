//! `kiln bench api`: listing every node through kiln's HTTP API, page by
//! page, against the database answering the same pages as JSON itself —
//! the least work any server could do for that list.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use super::{fleet, scratch::Scratch, BenchError, Report, Row};
use crate::app::Application;
use crate::db::Backend;
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
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => POSTGRES_PAGE,
        _ => SQLITE_PAGE,
    };
    let mut bytes = 0;
    for offset in (0..nodes).step_by(PAGE) {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [(PAGE as i64).into(), (offset as i64).into()],
            ))
            .await?
            .ok_or_else(|| BenchError::Setup("the JSON query returned no row".into()))?;
        let json: String = row.try_get("", "page")?;
        bytes += json.len();
    }
    Ok(bytes)
}

const POSTGRES_PAGE: &str = r#"
SELECT coalesce(json_agg(row_to_json(p) ORDER BY p.id), '[]')::text AS page FROM (
  SELECT n.id, n.name, n.admin, n.alive, n.available, n.bootenv, n.target_os,
         n.deployment_id, n.description, n.created_at, n.updated_at,
         coalesce((SELECT json_agg(row_to_json(i) ORDER BY i.id) FROM interface i
                   WHERE i.node_id = n.id), '[]') AS interfaces
  FROM node n ORDER BY n.id LIMIT $1 OFFSET $2) p"#;

const SQLITE_PAGE: &str = r#"
SELECT coalesce(json_group_array(json(p.j)), '[]') AS page FROM (
  SELECT json_object('id', n.id, 'name', n.name, 'admin', json(CASE WHEN n.admin THEN 'true' ELSE 'false' END),
         'alive', json(CASE WHEN n.alive THEN 'true' ELSE 'false' END),
         'available', json(CASE WHEN n.available THEN 'true' ELSE 'false' END),
         'bootenv', n.bootenv, 'target_os', n.target_os, 'deployment_id', n.deployment_id,
         'description', n.description, 'created_at', n.created_at, 'updated_at', n.updated_at,
         'interfaces', (SELECT coalesce(json_group_array(json_object('id', i.id, 'node_id', i.node_id,
                 'mac', i.mac, 'ip', i.ip, 'hostname', i.hostname)), '[]')
                 FROM interface i WHERE i.node_id = n.id)) AS j
  FROM node n ORDER BY n.id LIMIT ? OFFSET ?) p"#;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
