//! What to answer one DHCP request: pure, so every message type and client
//! kind is tested without sockets.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use super::table::{DhcpTable, Network};

/// What the server knows about itself for answers.
#[derive(Debug, Clone)]
pub struct BootContext {
    /// Server identifier and next-server (TFTP) address.
    pub server_ip: Ipv4Addr,
    /// Base URL of kiln's HTTP API, e.g. `http://10.99.0.1:3000`.
    pub api_url: String,
}

/// The reply (if any) and what the server must record.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub reply: Option<Message>,
    /// An unknown machine was given an address: register it.
    pub new_machine: Option<(String, Ipv4Addr)>,
    /// A machine kiln knows got no answer, and why (the server logs it).
    pub unanswered: Option<Unanswered>,
}

/// Why a known machine's request went unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// Its fixed address lies in no network kiln serves.
    NoNetwork { node: String, ip: Ipv4Addr },
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::NoNetwork { node, ip } => write!(
                f,
                "node {node}'s address {ip} is in no network kiln serves: declare its network"
            ),
        }
    }
}

/// How long an OFFERed pool address is held before a REQUEST.
const OFFER_HOLD: Duration = Duration::from_secs(60);

/// The client's MAC, lower-case colon form.
pub(super) fn mac_of(req: &Message) -> Option<String> {
    let chaddr = req.chaddr();
    (chaddr.len() >= 6).then(|| {
        chaddr[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

fn requested_ip(req: &Message) -> Option<Ipv4Addr> {
    match req.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    }
    .or_else(|| (!req.ciaddr().is_unspecified()).then(|| req.ciaddr()))
}

fn user_class_is_ipxe(req: &Message) -> bool {
    matches!(req.opts().get(OptionCode::UserClass), Some(DhcpOption::UserClass(bytes)) if bytes.windows(4).any(|w| w == b"iPXE"))
}

fn vendor_class(req: &Message) -> Option<String> {
    match req.opts().get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(bytes)) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    }
}

fn architecture(req: &Message) -> Option<u16> {
    match req.opts().get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(a)) => Some(a.0),
        _ => None,
    }
}

/// Whether the client is firmware or iPXE starting a network boot, not an
/// installed system asking for its lease: acknowledging it starts a new
/// boot, whose first boot script issues the node a fresh token.
pub fn starts_network_boot(req: &Message) -> bool {
    user_class_is_ipxe(req)
        || architecture(req).is_some()
        || vendor_class(req)
            .is_some_and(|v| v.starts_with("PXEClient") || v.starts_with("HTTPClient"))
}

/// The boot file for this client: kiln's script for iPXE, a URL for UEFI
/// HTTP boot, the EFI or BIOS iPXE binary for PXE firmware.
fn boot_file(req: &Message, mac: &str, ctx: &BootContext) -> (String, bool) {
    let http_client = vendor_class(req).is_some_and(|v| v.starts_with("HTTPClient"));
    if user_class_is_ipxe(req) {
        (format!("{}/boot/{mac}.ipxe", ctx.api_url), false)
    } else if http_client {
        (format!("{}/boot/files/ipxe.efi", ctx.api_url), true)
    } else {
        match architecture(req) {
            Some(7) | Some(9) => ("ipxe.efi".into(), false),
            _ => ("undionly.kpxe".into(), false),
        }
    }
}

fn base_reply(req: &Message, kind: MessageType, ctx: &BootContext) -> Message {
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(req.chaddr());
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(ctx.server_ip));
    reply
}

fn add_network_options(reply: &mut Message, net: &Network, hostname: Option<&str>, lease: bool) {
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::SubnetMask(net.mask()));
    if let Some(router) = net.router {
        opts.insert(DhcpOption::Router(vec![router]));
    }
    if !net.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(net.dns.clone()));
    }
    if !net.domain.is_empty() {
        opts.insert(DhcpOption::DomainName(net.domain.clone()));
    }
    if let Some(name) = hostname {
        opts.insert(DhcpOption::Hostname(name.to_string()));
    }
    if lease {
        opts.insert(DhcpOption::AddressLeaseTime(net.lease_secs));
    }
}

/// Answers one request. Unknown message types, replies, and requests for
/// networks kiln does not serve get no answer.
pub fn answer(req: &Message, table: &DhcpTable, ctx: &BootContext) -> Answer {
    // dhcproto slices chaddr by hlen and panics past 16: drop such packets.
    if req.opcode() != Opcode::BootRequest || req.hlen() > 16 {
        return Answer::default();
    }
    let (Some(mac), Some(kind)) = (mac_of(req), req.opts().msg_type()) else {
        return Answer::default();
    };
    let host = table.host(&mac);
    // Where the client is: its fixed address's network, else the relay's.
    let (ip, net) = match &host {
        Some(h) => match table.network_for(h.ip) {
            Some(net) => (Some(h.ip), net),
            None => {
                return Answer {
                    unanswered: Some(Unanswered::NoNetwork {
                        node: h.node.clone(),
                        ip: h.ip,
                    }),
                    ..Answer::default()
                }
            }
        },
        None => {
            let net = if req.giaddr().is_unspecified() {
                table.default_pool_network()
            } else {
                table.network_for(req.giaddr())
            };
            let Some(net) = net else {
                return Answer::default();
            };
            (None, net)
        }
    };
    match kind {
        MessageType::Discover => {
            let Some(ip) = ip.or_else(|| table.pool_address(&mac, &net, OFFER_HOLD)) else {
                return Answer::default();
            };
            let reply = lease_reply(req, MessageType::Offer, ip, &net, host.as_ref(), &mac, ctx);
            Answer {
                reply: Some(reply),
                new_machine: None,
                unanswered: None,
            }
        }
        MessageType::Request => {
            // A client that chose another server's offer is not ours to answer.
            let for_other_server = matches!(
                req.opts().get(OptionCode::ServerIdentifier),
                Some(DhcpOption::ServerIdentifier(id)) if *id != ctx.server_ip
            );
            if for_other_server {
                if host.is_none() {
                    table.release(&mac);
                }
                return Answer::default();
            }
            match (ip.or_else(|| table.leased(&mac)), requested_ip(req)) {
                (Some(ours), Some(theirs)) if ours == theirs => {
                    let new_machine = host.is_none().then(|| {
                        let lease = Duration::from_secs(u64::from(net.lease_secs));
                        table.pool_address(&mac, &net, lease);
                        (mac.clone(), ours)
                    });
                    let reply =
                        lease_reply(req, MessageType::Ack, ours, &net, host.as_ref(), &mac, ctx);
                    Answer {
                        reply: Some(reply),
                        new_machine,
                        unanswered: None,
                    }
                }
                // Not the address we hold for it (a moved machine, an
                // expired offer): tell it to start over.
                _ => Answer {
                    reply: Some(base_reply(req, MessageType::Nak, ctx)),
                    new_machine: None,
                    unanswered: None,
                },
            }
        }
        MessageType::Inform => {
            let mut reply = base_reply(req, MessageType::Ack, ctx);
            reply.set_ciaddr(req.ciaddr());
            add_network_options(
                &mut reply,
                &net,
                host.as_ref().map(|h| short_name(&h.node)),
                false,
            );
            Answer {
                reply: Some(reply),
                new_machine: None,
                unanswered: None,
            }
        }
        MessageType::Release => {
            if host.is_none() {
                table.release(&mac);
            }
            Answer::default()
        }
        MessageType::Decline => {
            if let (None, Some(declined)) = (&host, requested_ip(req)) {
                table.decline(&mac, declined);
            }
            Answer::default()
        }
        _ => Answer::default(),
    }
}

fn short_name(fqdn: &str) -> &str {
    fqdn.split('.').next().unwrap_or(fqdn)
}

fn lease_reply(
    req: &Message,
    kind: MessageType,
    ip: Ipv4Addr,
    net: &Network,
    host: Option<&super::table::Host>,
    mac: &str,
    ctx: &BootContext,
) -> Message {
    let mut reply = base_reply(req, kind, ctx);
    reply.set_yiaddr(ip).set_siaddr(ctx.server_ip);
    add_network_options(&mut reply, net, host.map(|h| short_name(&h.node)), true);
    // A node that boots from disk gets no boot file: its firmware moves on.
    if !host.is_some_and(|h| h.local_boot) {
        let (file, http) = boot_file(req, mac, ctx);
        reply.set_fname_str(&file);
        reply
            .opts_mut()
            .insert(DhcpOption::BootfileName(file.into_bytes()));
        if http {
            reply
                .opts_mut()
                .insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks() -> Vec<Network> {
        vec![
            Network {
                name: "a".into(),
                address: Ipv4Addr::new(10, 1, 0, 0),
                prefix: 24,
                router: Some(Ipv4Addr::new(10, 1, 0, 1)),
                dns: vec![],
                domain: "a.example".into(),
                pool: Some((Ipv4Addr::new(10, 1, 0, 100), Ipv4Addr::new(10, 1, 0, 100))),
                lease_secs: 600,
            },
            Network {
                name: "b".into(),
                address: Ipv4Addr::new(10, 2, 0, 0),
                prefix: 24,
                router: Some(Ipv4Addr::new(10, 2, 0, 1)),
                dns: vec![],
                domain: "b.example".into(),
                pool: Some((Ipv4Addr::new(10, 2, 0, 50), Ipv4Addr::new(10, 2, 0, 51))),
                lease_secs: 600,
            },
        ]
    }

    fn table() -> DhcpTable {
        let table = DhcpTable::default();
        table.set_networks(networks());
        table
    }

    fn ctx() -> BootContext {
        BootContext {
            server_ip: Ipv4Addr::new(10, 1, 0, 1),
            api_url: "http://10.1.0.1:3000".into(),
        }
    }

    fn request(mac: u8, kind: MessageType, giaddr: Ipv4Addr) -> Message {
        let mut msg = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            giaddr,
            &[0x52, 0x54, 0, 0, 0, mac],
        );
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        msg
    }

    #[test]
    fn relay_chooses_the_network_of_giaddr() {
        let table = table();
        let relay = Ipv4Addr::new(10, 2, 0, 1);
        let offer = answer(&request(1, MessageType::Discover, relay), &table, &ctx())
            .reply
            .expect("offer");
        assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 2, 0, 50));
        assert_eq!(offer.giaddr(), relay);
        // Not behind a relay: the first network with a pool.
        let direct = answer(
            &request(2, MessageType::Discover, Ipv4Addr::UNSPECIFIED),
            &table,
            &ctx(),
        )
        .reply
        .expect("offer");
        assert_eq!(direct.yiaddr(), Ipv4Addr::new(10, 1, 0, 100));
        // A relay from a network kiln does not serve gets no answer.
        let unknown = answer(
            &request(3, MessageType::Discover, Ipv4Addr::new(192, 0, 2, 1)),
            &table,
            &ctx(),
        );
        assert!(unknown.reply.is_none());
    }

    #[test]
    fn decline_quarantines_and_release_frees() {
        let table = table();
        let relay = Ipv4Addr::new(10, 2, 0, 1);
        let first = answer(&request(1, MessageType::Discover, relay), &table, &ctx())
            .reply
            .unwrap();
        assert_eq!(first.yiaddr(), Ipv4Addr::new(10, 2, 0, 50));
        let mut decline = request(1, MessageType::Decline, relay);
        decline
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(first.yiaddr()));
        assert!(answer(&decline, &table, &ctx()).reply.is_none());
        // The declined address is not offered again, to anyone.
        let again = answer(&request(1, MessageType::Discover, relay), &table, &ctx())
            .reply
            .unwrap();
        assert_eq!(again.yiaddr(), Ipv4Addr::new(10, 2, 0, 51));
        // The pool is now used up by this client; RELEASE frees its address.
        assert!(
            answer(&request(2, MessageType::Discover, relay), &table, &ctx())
                .reply
                .is_none()
        );
        answer(&request(1, MessageType::Release, relay), &table, &ctx());
        let freed = answer(&request(2, MessageType::Discover, relay), &table, &ctx())
            .reply
            .unwrap();
        assert_eq!(freed.yiaddr(), Ipv4Addr::new(10, 2, 0, 51));
    }

    #[test]
    fn a_known_machine_outside_every_network_is_unanswered_with_the_reason() {
        let table = DhcpTable::default();
        let host = crate::db::hosts::HostEntry {
            name: "lost.lab.example".into(),
            mac: "52:54:00:00:00:07".into(),
            ip: "10.9.0.5".into(),
            local_boot: false,
        };
        table.replace(vec![host], Vec::new());
        table.set_networks(networks());
        let outcome = answer(
            &request(7, MessageType::Discover, Ipv4Addr::UNSPECIFIED),
            &table,
            &ctx(),
        );
        assert!(outcome.reply.is_none());
        assert_eq!(
            outcome.unanswered,
            Some(Unanswered::NoNetwork {
                node: "lost.lab.example".into(),
                ip: Ipv4Addr::new(10, 9, 0, 5)
            })
        );
        assert_eq!(
            table.pool_free(),
            vec![("a".to_string(), 1), ("b".to_string(), 2)]
        );
    }

    #[test]
    fn inform_gets_options_without_an_address() {
        let table = table();
        let mut inform = request(9, MessageType::Inform, Ipv4Addr::new(10, 1, 0, 1));
        inform.set_ciaddr(Ipv4Addr::new(10, 1, 0, 77));
        let ack = answer(&inform, &table, &ctx()).reply.expect("ack");
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        assert!(ack.yiaddr().is_unspecified());
        assert!(ack.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(ack.opts().get(OptionCode::Router).is_some());
    }
}
