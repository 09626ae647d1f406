//! `GET /metrics`: Prometheus text for runs, the queue, slots, noderoles by
//! state, and, while they run, kiln's DHCP server (packets received,
//! answered by message type, malformed, free pool addresses per network)
//! and TFTP server (transfers completed and failed).

use std::fmt::Write as _;

use actix_web::{get, web, HttpResponse};

use std::sync::atomic::{AtomicU64, Ordering};

use super::ApiError;
use super::AppState;
use crate::db::noderoles;
use crate::provisioner::dhcp::{DhcpStats, DhcpTable};
use crate::provisioner::tftp::TftpStats;

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The DHCP server's counters (as `server.rs` counts them) and its pools.
fn write_dhcp(out: &mut String, stats: &DhcpStats, table: Option<&DhcpTable>) {
    header(
        out,
        "kiln_dhcp_received_total",
        "counter",
        "DHCP datagrams received.",
    );
    let _ = writeln!(out, "kiln_dhcp_received_total {}", read(&stats.received));
    header(
        out,
        "kiln_dhcp_answered_total",
        "counter",
        "DHCP replies sent, by message type.",
    );
    for (kind, counter) in [
        ("offer", &stats.offers),
        ("ack", &stats.acks),
        ("nak", &stats.naks),
    ] {
        let _ = writeln!(
            out,
            "kiln_dhcp_answered_total{{type=\"{kind}\"}} {}",
            read(counter)
        );
    }
    header(
        out,
        "kiln_dhcp_malformed_total",
        "counter",
        "DHCP datagrams dropped as malformed.",
    );
    let _ = writeln!(out, "kiln_dhcp_malformed_total {}", read(&stats.malformed));
    for (name, help, counter) in [
        (
            "kiln_dhcp_durable_acks_total",
            "Pool-lease ACKs sent after their lease committed.",
            &stats.durable_acks,
        ),
        (
            "kiln_dhcp_lease_commits_total",
            "Transactions that committed acknowledged leases (several per commit under load).",
            &stats.lease_commits,
        ),
        (
            "kiln_dhcp_dropped_acks_total",
            "Pool-lease ACKs dropped because too many waited for their lease.",
            &stats.dropped_acks,
        ),
    ] {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", read(counter));
    }
    header(
        out,
        "kiln_dhcp_pool_free",
        "gauge",
        "Pool addresses free to hand out, per network.",
    );
    for (network, free) in table.map(DhcpTable::pool_free).unwrap_or_default() {
        let _ = writeln!(
            out,
            "kiln_dhcp_pool_free{{network=\"{}\"}} {free}",
            label(&network)
        );
    }
}

fn write_tftp(out: &mut String, stats: &TftpStats) {
    header(
        out,
        "kiln_tftp_transfers_total",
        "counter",
        "TFTP transfers, completed or failed (refused or abandoned).",
    );
    for (outcome, counter) in [("completed", &stats.completed), ("failed", &stats.failed)] {
        let _ = writeln!(
            out,
            "kiln_tftp_transfers_total{{outcome=\"{outcome}\"}} {}",
            read(counter)
        );
    }
}

/// A label value as Prometheus text needs it.
fn label(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

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
    let scalars: [(&str, &str, &str, u64); 10] = [
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
            "kiln_slots_parked_runs",
            "gauge",
            "Running runs waiting on their machines with their slots given up.",
            scheduler.parked as u64,
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
    let (by_power, failing) = crate::db::bmcs::power_counts(&state.db).await?;
    header(
        &mut out,
        "kiln_nodes_power",
        "gauge",
        "Nodes with a BMC, by the power state it last reported.",
    );
    for (power, n) in by_power {
        let _ = writeln!(out, "kiln_nodes_power{{state=\"{}\"}} {n}", label(&power));
    }
    header(
        &mut out,
        "kiln_bmc_failing",
        "gauge",
        "Nodes whose BMC failed its last call.",
    );
    let _ = writeln!(out, "kiln_bmc_failing {failing}");
    if let Some(dhcp) = &state.dhcp_stats {
        write_dhcp(&mut out, dhcp, state.dhcp_table.as_deref());
    }
    if let Some(tftp) = &state.tftp_stats {
        write_tftp(&mut out, tftp);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
