//! Machines kiln's DHCP server met for the first time become nodes: bootenv
//! `sledgehammer`, their discovery roles bound and committed (their lease
//! was kept in the `lease` table before their ACK left, see `dhcp::acks`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::dhcp::DhcpTable;
use crate::db::nodes::{self, NewInterface, NewNode};
use crate::db::{hosts, networks};
use crate::orchestrator::Orchestrator;

/// The name a discovered machine gets: `d<mac digits>.<domain>`.
pub fn discovered_name(mac: &str, domain: &str) -> String {
    let digits: String = mac.chars().filter(|c| *c != ':').collect();
    if domain.is_empty() {
        format!("d{digits}")
    } else {
        format!("d{digits}.{domain}")
    }
}

/// Registers each new machine once and records its lease, until kiln
/// stops. Runs on the actix arbiter, because registering starts the node's
/// actor.
pub fn spawn(
    orchestrator: Orchestrator,
    table: Arc<DhcpTable>,
    mut machines: mpsc::UnboundedReceiver<(String, Ipv4Addr)>,
) {
    let shutdown = orchestrator.shutdown().clone();
    shutdown.spawn_local(async move {
        while let Some(first) = machines.recv().await {
            // A rack powering on sends hundreds at once: register all that
            // are waiting, then reload the DHCP table once for the batch.
            let mut batch = vec![first];
            while let Ok(next) = machines.try_recv() {
                batch.push(next);
            }
            let mut registered = 0;
            for (mac, ip) in batch {
                match register(&orchestrator, &table, &mac, ip).await {
                    Ok(true) => registered += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(%mac, %ip, error = %e, "could not register a discovered machine")
                    }
                }
            }
            if registered > 0 {
                let db = orchestrator.db();
                match (hosts::list(db).await, networks::list(db).await) {
                    (Ok(hosts), Ok(networks)) => {
                        table.replace(hosts, networks);
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::error!(error = %e.detail(), "could not reload the DHCP table after discovery")
                    }
                }
            }
        }
    });
}

/// Waits (briefly) for a machine kiln's DHCP server just leased an address
/// to be registered: iPXE asks for its boot script milliseconds after the
/// ACK, and the script must name the node and carry its token.
pub async fn await_registration(
    db: &sea_orm::DatabaseConnection,
    table: &DhcpTable,
    mac: &str,
) -> Result<Option<entity::node::Model>, crate::db::RepoError> {
    let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
    loop {
        if let Some(node) = nodes::find_by_mac(db, mac).await? {
            return Ok(Some(node));
        }
        if table.leased(mac).is_none() || tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How long a boot script request waits for its machine's registration.
const REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// For a MAC no node has, creates its node (for a node's MAC without an
/// address, keeps the leased one); true when the DHCP table must reload.
async fn register(
    orchestrator: &Orchestrator,
    table: &DhcpTable,
    mac: &str,
    ip: Ipv4Addr,
) -> Result<bool, String> {
    let db = orchestrator.db();
    let domain = table.network_for(ip).map(|n| n.domain).unwrap_or_default();
    if nodes::find_by_mac(db, mac)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        // A MAC its node's BMC listed has no address until it asks.
        return nodes::fill_leased_address(db, mac, &ip.to_string())
            .await
            .map_err(|e| e.to_string());
    }
    orchestrator
        .create_node(NewNode {
            name: discovered_name(mac, &domain),
            available: true,
            bootenv: "sledgehammer".into(),
            interfaces: vec![NewInterface {
                mac: mac.to_string(),
                ip: Some(ip.to_string()),
                hostname: None,
            }],
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%mac, %ip, "registered a new machine");
    Ok(true)
}
