//! Any datagram through what kiln's DHCP server does with it: decode, answer
//! from a table with known hosts, a pool and a network without one, encode
//! the reply. A panic or an abort anywhere on that path is a crash.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use dhcproto::{Decodable, Encodable};
use kiln::db::hosts::HostEntry;
use kiln::provisioner::dhcp::{answer, BootContext, DhcpTable};
use libfuzzer_sys::fuzz_target;

/// Two networks (one with a small pool, so it runs out), three hosts (one
/// booting from disk, one outside every network).
fn table() -> &'static (DhcpTable, BootContext) {
    static TABLE: OnceLock<(DhcpTable, BootContext)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table = DhcpTable::default();
        let host = |name: &str, mac: &str, ip: &str, local_boot| HostEntry {
            name: name.into(),
            mac: mac.into(),
            ip: ip.into(),
            local_boot,
        };
        let network =
            |id, subnet: &str, router: &str, pool: Option<(&str, &str)>| entity::network::Model {
                id,
                name: format!("net{id}"),
                subnet: subnet.into(),
                router: Some(router.into()),
                dns: serde_json::json!(["10.99.0.1"]),
                domain: "lab.example".into(),
                pool_start: pool.map(|p| p.0.into()),
                pool_end: pool.map(|p| p.1.into()),
                lease_secs: 3600,
            };
        table.replace(
            vec![
                host("n1.lab.example", "52:54:00:00:00:01", "10.99.0.11", false),
                host("n2.lab.example", "52:54:00:00:00:02", "10.99.0.12", true),
                host("far.lab.example", "52:54:00:00:00:03", "192.0.2.9", false),
            ],
            vec![
                network(
                    1,
                    "10.99.0.0/24",
                    "10.99.0.1",
                    Some(("10.99.0.100", "10.99.0.103")),
                ),
                network(2, "10.98.0.0/16", "10.98.0.1", None),
            ],
        );
        let ctx = BootContext {
            server_ip: Ipv4Addr::new(10, 99, 0, 1),
            api_url: "http://10.99.0.1:3000".into(),
        };
        (table, ctx)
    })
}

fuzz_target!(|datagram: &[u8]| {
    let (table, ctx) = table();
    let Ok(request) = dhcproto::v4::Message::from_bytes(datagram) else {
        return;
    };
    if let Some(reply) = answer(&request, table, ctx).reply {
        let _ = reply.to_vec();
    }
});
