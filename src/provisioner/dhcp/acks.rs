//! ACKs that wait for their lease: an ACK that hands a pool address to a
//! machine kiln does not know leaves only after the lease row committed,
//! so a kiln killed right after it still knows, after its restart, which
//! address that machine holds. The server hands such ACKs here; the writer
//! takes every one waiting, records them in one transaction (one flush for
//! a burst: the cost per lease falls as the load rises), then sends them
//! and registers the machines. A database fault is retried until it passes;
//! meanwhile the clients retransmit, as DHCP clients do. A full queue
//! drops the ACK (counted): the client asks again.
//!
//! OFFERs and the ACKs of known hosts (whose addresses are node rows
//! already) never wait.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dhcproto::v4::Message;
use sea_orm::DatabaseConnection;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::server::{deliver, DhcpStats, Observers};
use crate::actors::hub::persistently;
use crate::db::leases::{self, AckedLease};
use crate::shutdown::Shutdown;

/// How many ACKs may wait for their lease at once.
pub const QUEUE: usize = 4096;
/// The most leases one transaction records.
const MOST_PER_COMMIT: usize = 512;

/// An ACK and the lease it acknowledges.
pub struct HeldAck {
    pub lease: AckedLease,
    pub ip: Ipv4Addr,
    pub request: Message,
    pub reply: Message,
    pub bytes: Vec<u8>,
    pub to: SocketAddr,
}

/// Where the writer sends from and what it tells the rest of kiln.
pub struct Delivery {
    pub socket: Arc<UdpSocket>,
    pub stats: Arc<DhcpStats>,
    pub observers: Observers,
    pub new_machines: mpsc::UnboundedSender<(String, Ipv4Addr)>,
}

/// Records the leases of the waiting ACKs, then sends them, until kiln
/// stops.
pub async fn write_then_send(
    mut held: mpsc::Receiver<HeldAck>,
    db: DatabaseConnection,
    delivery: Delivery,
    shutdown: Shutdown,
) {
    while let Some(first) = held.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            match held.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let rows: Vec<AckedLease> = batch.iter().map(|h| h.lease.clone()).collect();
        let recorded = persistently("recording acknowledged leases", &shutdown, || async {
            Ok(leases::record_acked(&db, &rows).await?)
        })
        .await;
        if let Err(e) = recorded {
            // Only a stopping kiln gets here: nothing was acknowledged.
            tracing::info!(error = %e, leases = batch.len(), "kiln stopped before these leases were kept; not acknowledged");
            continue;
        }
        delivery
            .stats
            .durable_acks
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        delivery.stats.lease_commits.fetch_add(1, Ordering::Relaxed);
        for ack in batch {
            deliver(
                &delivery.socket,
                &delivery.stats,
                &delivery.observers,
                &ack.request,
                &ack.reply,
                &ack.bytes,
                ack.to,
            )
            .await;
            let _ = delivery.new_machines.send((ack.lease.mac, ack.ip));
        }
    }
}
