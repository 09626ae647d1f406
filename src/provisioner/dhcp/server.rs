//! The UDP loop: decode, answer, reply to the client, its relay, or the
//! broadcast address. Malformed packets are dropped and counted; nothing a
//! packet contains can stop the server.

use crate::shutdown::Shutdown;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::collections::HashMap;

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use sea_orm::DatabaseConnection;

use super::acks::{self, HeldAck};
use super::answer::{answer, starts_network_boot, Answer, BootContext, Unanswered};
use super::table::DhcpTable;
use crate::db::leases::AckedLease;
use crate::provisioner::boots::Boots;
use crate::provisioner::discovery::discovered_name;
use crate::provisioner::sightings::Sightings;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DhcpStats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Replies sent, by message type.
    pub offers: AtomicU64,
    pub acks: AtomicU64,
    pub naks: AtomicU64,
    /// Datagrams that were not DHCP (or whose reply could not be encoded).
    pub malformed: AtomicU64,
    /// ACKs of pool leases sent after their lease committed, and the
    /// transactions that committed them (fewer under load: group commit).
    pub durable_acks: AtomicU64,
    pub lease_commits: AtomicU64,
    /// ACKs dropped because too many waited for their lease (the client
    /// asks again).
    pub dropped_acks: AtomicU64,
}

impl DhcpStats {
    fn answered(&self, reply: &Message) {
        let counter = match reply.opts().msg_type() {
            Some(MessageType::Offer) => &self.offers,
            Some(MessageType::Ack) => &self.acks,
            Some(MessageType::Nak) => &self.naks,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Says once per machine, not once per packet, why a known machine gets
/// no answer; said again only after it was answered or the reason changed.
#[derive(Debug, Default)]
struct UnansweredLog {
    said: HashMap<String, Unanswered>,
}

impl UnansweredLog {
    /// What to log for this outcome for `mac`, if anything.
    fn note(&mut self, mac: &str, outcome: &Answer) -> Option<String> {
        match &outcome.unanswered {
            Some(why) if self.said.get(mac) != Some(why) => {
                self.said.insert(mac.to_string(), why.clone());
                Some(format!("dhcp: not answering {mac}: {why}"))
            }
            Some(_) => None,
            None => {
                self.said.remove(mac);
                None
            }
        }
    }
}

/// A running server: its address and counters.
#[derive(Clone)]
pub struct DhcpHandle {
    pub local_addr: SocketAddr,
    pub stats: Arc<DhcpStats>,
}

/// Opens the server's socket: broadcast allowed, and bound to `interface`
/// (SO_BINDTODEVICE) when one is named, so broadcasts leave by the
/// provisioning network and only its requests are heard.
pub fn open_socket(bind: SocketAddr, interface: &str) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    if !interface.is_empty() {
        socket.bind_device(Some(interface.as_bytes()))?;
    }
    socket.bind(&bind.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What the server tells the rest of kiln about the machines it answers.
#[derive(Clone, Default)]
pub struct Observers {
    /// Each machine's last DHCP answer.
    pub sightings: Arc<Sightings>,
    /// Network boots started (an ACK to firmware or iPXE).
    pub boots: Arc<Boots>,
}

/// Serves on an opened socket until `shutdown` fires; a pool lease's ACK
/// leaves once `db` holds the lease (`acks`), and unknown machines that
/// were given an address are sent on `new_machines` then.
pub fn start(
    socket: std::net::UdpSocket,
    table: Arc<DhcpTable>,
    ctx: BootContext,
    db: DatabaseConnection,
    new_machines: mpsc::UnboundedSender<(String, Ipv4Addr)>,
    observers: Observers,
    shutdown: &Shutdown,
) -> std::io::Result<DhcpHandle> {
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    let local_addr = socket.local_addr()?;
    let stats = Arc::new(DhcpStats::default());
    let handle = DhcpHandle {
        local_addr,
        stats: stats.clone(),
    };
    let (held, waiting) = mpsc::channel(acks::QUEUE);
    let delivery = acks::Delivery {
        socket: socket.clone(),
        stats: stats.clone(),
        observers: observers.clone(),
        new_machines,
    };
    shutdown.spawn(acks::write_then_send(
        waiting,
        db,
        delivery,
        shutdown.clone(),
    ));
    shutdown.spawn(serve(socket, table, ctx, held, stats, observers));
    Ok(handle)
}

async fn serve(
    socket: Arc<UdpSocket>,
    table: Arc<DhcpTable>,
    ctx: BootContext,
    held: mpsc::Sender<HeldAck>,
    stats: Arc<DhcpStats>,
    observers: Observers,
) {
    let server_port = socket.local_addr().map(|a| a.port()).unwrap_or(67);
    let mut buf = vec![0u8; 4096];
    let mut unanswered = UnansweredLog::default();
    loop {
        let burst = match receive_burst(&socket, &mut buf).await {
            Ok(burst) => burst,
            Err(e) => {
                tracing::warn!(error = %e, "dhcp receive failed");
                continue;
            }
        };
        stats
            .received
            .fetch_add(burst.len() as u64, Ordering::Relaxed);
        let mut requests: Vec<(Message, SocketAddr)> = Vec::with_capacity(burst.len());
        for (packet, from) in &burst {
            match decode(packet) {
                Some(req) => requests.push((req, *from)),
                None => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for (req, from) in answer_order(requests) {
            let Some(outcome) = answer_safely(&req, &table, &ctx) else {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if let Some(mac) = super::answer::mac_of(&req) {
                if let Some(line) = unanswered.note(&mac, &outcome) {
                    tracing::warn!(%mac, "{line}");
                }
            }
            let Some(reply) = outcome.reply else { continue };
            let Ok(bytes) = reply.to_vec() else {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let to = destination(&req, from, server_port);
            if let Some((mac, ip)) = outcome.new_machine {
                let ack = HeldAck {
                    lease: pool_lease(&table, &mac, ip),
                    ip,
                    request: req,
                    reply,
                    bytes,
                    to,
                };
                if held.try_send(ack).is_err() {
                    stats.dropped_acks.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            deliver(&socket, &stats, &observers, &req, &reply, &bytes, to).await;
        }
    }
}

/// The most datagrams taken from the socket at once.
const BURST: usize = 64;

/// Waits for a datagram, then takes whatever else the socket already holds
/// (up to [`BURST`]): under overload, what waited is answered in
/// [`answer_order`], not in arrival order.
async fn receive_burst(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<Vec<(Vec<u8>, SocketAddr)>> {
    let (len, from) = socket.recv_from(buf).await?;
    let mut burst = vec![(buf[..len].to_vec(), from)];
    while burst.len() < BURST {
        match socket.try_recv_from(buf) {
            Ok((len, from)) => burst.push((buf[..len].to_vec(), from)),
            Err(_) => break,
        }
    }
    Ok(burst)
}

/// Everything before DISCOVERs, each kind in arrival order: a machine
/// half-way through its exchange (a REQUEST after its OFFER) finishes it
/// before another starts, so an overloaded server still completes leases
/// instead of handing out offers that time out.
fn answer_order<T>(mut requests: Vec<(Message, T)>) -> Vec<(Message, T)> {
    requests.sort_by_key(|(req, _)| req.opts().msg_type() == Some(MessageType::Discover));
    requests
}

/// The lease row a pool ACK to `mac` stands for.
fn pool_lease(table: &DhcpTable, mac: &str, ip: Ipv4Addr) -> AckedLease {
    let network = table.network_for(ip);
    let domain = network
        .as_ref()
        .map(|n| n.domain.clone())
        .unwrap_or_default();
    let secs = network.map(|n| n.lease_secs).unwrap_or(3600);
    AckedLease {
        mac: mac.to_string(),
        ip: ip.to_string(),
        hostname: Some(discovered_name(mac, &domain)),
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(i64::from(secs)),
    }
}

/// Sends one answer, and tells the rest of kiln what it told the machine.
pub(super) async fn deliver(
    socket: &UdpSocket,
    stats: &DhcpStats,
    observers: &Observers,
    req: &Message,
    reply: &Message,
    bytes: &[u8],
    to: SocketAddr,
) {
    // Before the ACK leaves: the machine asks for its script right after.
    record_boot_start(&observers.boots, req, reply);
    if socket.send_to(bytes, to).await.is_ok() {
        stats.answered(reply);
        record_sighting(&observers.sightings, req, reply);
    }
}

/// An ACK to firmware or iPXE starts the machine's new network boot.
fn record_boot_start(boots: &Boots, req: &Message, reply: &Message) {
    if reply.opts().msg_type() != Some(dhcproto::v4::MessageType::Ack) || !starts_network_boot(req)
    {
        return;
    }
    if let Some(mac) = super::answer::mac_of(req) {
        boots.started(&mac);
    }
}

/// Keeps the answer as the machine's last DHCP contact, for runlogs of
/// machines that never come back.
fn record_sighting(sightings: &Sightings, req: &Message, reply: &Message) {
    let Some(mac) = super::answer::mac_of(req) else {
        return;
    };
    let kind = match reply.opts().msg_type() {
        Some(kind) => format!("{kind:?}").to_uppercase(),
        None => "reply".to_string(),
    };
    let mut line = format!("{kind} {}", reply.yiaddr());
    if let Some(DhcpOption::BootfileName(file)) = reply.opts().get(OptionCode::BootfileName) {
        line.push_str(&format!(" boot {}", String::from_utf8_lossy(file)));
    }
    sightings.dhcp_answer(&mac, line);
}

/// The datagram as a DHCP message; `None` when it is not one. The decoder
/// has debug assertions that input can trip, and a packet must never take
/// the server down, so a panic counts as malformed too.
fn decode(packet: &[u8]) -> Option<Message> {
    std::panic::catch_unwind(|| Message::from_bytes(packet).ok())
        .ok()
        .flatten()
}

/// The answer to `req`; `None` when answering panicked on what it holds.
fn answer_safely(req: &Message, table: &DhcpTable, ctx: &BootContext) -> Option<Answer> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(req, table, ctx))).ok()
}

/// RFC 2131 4.1: to the relay (at the server's own port, 67 on a real
/// network), to a configured client's address, else broadcast.
fn destination(req: &Message, from: SocketAddr, server_port: u16) -> SocketAddr {
    if !req.giaddr().is_unspecified() {
        SocketAddr::V4(SocketAddrV4::new(req.giaddr(), server_port))
    } else if !req.ciaddr().is_unspecified() {
        SocketAddr::V4(SocketAddrV4::new(req.ciaddr(), 68))
    } else if from.ip().is_loopback() {
        from
    } else {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 68))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_machine_left_unanswered_is_logged_once_per_reason() {
        let mut log = UnansweredLog::default();
        let lost = Answer {
            unanswered: Some(Unanswered::NoNetwork {
                node: "n1".into(),
                ip: Ipv4Addr::new(10, 9, 0, 5),
            }),
            ..Answer::default()
        };
        let mac = "52:54:00:00:00:01";
        let first = log.note(mac, &lost).expect("said the first time");
        assert!(
            first.contains(mac) && first.contains("10.9.0.5 is in no network"),
            "{first}"
        );
        for _ in 0..100 {
            assert_eq!(log.note(mac, &lost), None, "not once per packet");
        }
        assert_eq!(log.note("52:54:00:00:00:02", &Answer::default()), None);
        // Answered once (its network was declared), then lost again: said again.
        assert_eq!(log.note(mac, &Answer::default()), None);
        assert!(log.note(mac, &lost).is_some());
    }

    #[test]
    fn requests_are_answered_before_discovers_each_in_arrival_order() {
        let msg = |kind, n: u8| {
            let mut m = Message::new(
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                &[2, 0, 0, 0, 0, n],
            );
            m.opts_mut().insert(DhcpOption::MessageType(kind));
            (m, n)
        };
        let arrived = vec![
            msg(MessageType::Discover, 1),
            msg(MessageType::Request, 2),
            msg(MessageType::Discover, 3),
            msg(MessageType::Release, 4),
            msg(MessageType::Request, 5),
        ];
        let order: Vec<u8> = answer_order(arrived).into_iter().map(|(_, n)| n).collect();
        assert_eq!(order, vec![2, 4, 5, 1, 3]);
    }

    #[test]
    fn garbage_never_takes_the_server_down() {
        let table = DhcpTable::default();
        let ctx = BootContext {
            server_ip: Ipv4Addr::LOCALHOST,
            api_url: "http://127.0.0.1:3000".into(),
        };
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        };
        for len in 0..2000usize {
            let mut bytes: Vec<u8> = (0..len % 700).map(|_| next()).collect();
            // Half of them look like DHCP: a request with the magic cookie.
            if len % 2 == 0 && bytes.len() > 240 {
                bytes[0] = 1;
                bytes[236..240].copy_from_slice(&[99, 130, 83, 99]);
            }
            if let Some(req) = decode(&bytes) {
                let _ = answer_safely(&req, &table, &ctx);
            }
        }
    }
}
