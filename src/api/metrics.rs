//! `GET /metrics`: Prometheus text for runs, the queue, slots, and
//! noderoles by state.

use std::fmt::Write as _;

use actix_web::{get, web, HttpResponse};

use super::ApiError;
use super::AppState;
use crate::db::noderoles;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"), (status = 503, description = "the database does not answer"))
)]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let runs = state.orchestrator.counters();
    let scheduler = state.orchestrator.scheduler_status().await?;
    let annealer = state.orchestrator.annealer_status().await?;
    let scalars: [(&str, &str, &str, u64); 9] = [
        (
            "kiln_runs_queued_total",
            "counter",
            "Runs queued.",
            runs.queued_total,
        ),
        (
            "kiln_runs_started_total",
            "counter",
            "Runs started.",
            runs.started_total,
        ),
        (
            "kiln_runs_succeeded_total",
            "counter",
            "Runs that succeeded.",
            runs.succeeded_total,
        ),
        (
            "kiln_runs_failed_total",
            "counter",
            "Runs that failed.",
            runs.failed_total,
        ),
        (
            "kiln_run_queue_depth",
            "gauge",
            "Runs queued, not started.",
            runs.queue_depth,
        ),
        (
            "kiln_slots_capacity",
            "gauge",
            "Global run slots.",
            scheduler.capacity as u64,
        ),
        (
            "kiln_slots_in_use",
            "gauge",
            "Slots held by running runs.",
            scheduler.in_use as u64,
        ),
        (
            "kiln_slot_waiting_runs",
            "gauge",
            "Runs waiting for a slot.",
            scheduler.waiting.len() as u64,
        ),
        (
            "kiln_annealer_passes_total",
            "counter",
            "Annealer passes.",
            annealer.passes,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in scalars {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP kiln_noderoles Noderoles by state.\n# TYPE kiln_noderoles gauge"
    );
    for (s, n) in noderoles::count_by_state(&state.db).await? {
        let _ = writeln!(out, "kiln_noderoles{{state=\"{s}\"}} {n}");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
