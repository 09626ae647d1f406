//! An acknowledged lease outlives kill -9: the real `kiln serve` binary with
//! its DHCP server on loopback answers 300 unknown machines (DISCOVER,
//! OFFER, REQUEST, ACK, many at once), is killed with SIGKILL right after
//! the last ACK, and restarted on the same database. Every ACKed (MAC,
//! address) pair is in `GET /api/v2/leases`, each of those MACs is offered
//! its own address again, and new MACs are never offered one of them. On
//! both databases.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::process::KilnProcess;
use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Encodable};
use serde_json::Value;
use tokio::net::UdpSocket;

const TOKEN: &str = "dhcp-durable-admin-token";
const MACHINES: u32 = 300;
const AT_ONCE: usize = 30;

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "10.97.0.0/16"
router = "10.97.0.1"
domain = "lab.example"
pool = ["10.97.1.0", "10.97.2.255"]
"#;

/// `kiln serve` with DHCP on a loopback port, killed when dropped.
struct Kiln {
    process: KilnProcess,
    api: String,
    dhcp: SocketAddr,
}

impl Kiln {
    async fn start(db_url: &str, dir: &Path) -> Kiln {
        let cluster = dir.join("cluster.toml");
        let process = KilnProcess::serve(
            &["--cluster".as_ref(), cluster.as_os_str()],
            dir,
            &[
                ("KILN_DATABASE__URL", db_url.to_string()),
                ("KILN_AUTH__ADMIN_TOKEN", TOKEN.to_string()),
                ("KILN_DHCP__ENABLED", "true".to_string()),
                ("KILN_DHCP__ADDRESS", "127.0.0.1".to_string()),
                ("KILN_DHCP__PORT", "0".to_string()),
                (
                    "KILN_PROVISIONER__EXPORT_DIR",
                    dir.join("export").display().to_string(),
                ),
            ],
        );
        let port = process.port().await;
        let dhcp = process
            .announced("its DHCP address", |fields| {
                (fields["message"] == "kiln's DHCP server is answering")
                    .then(|| fields["addr"].as_str()?.parse().ok())
                    .flatten()
            })
            .await;
        Kiln {
            process,
            api: format!("http://127.0.0.1:{port}/api/v2"),
            dhcp,
        }
    }

    async fn kill_9(self) {
        self.process.kill_9().await;
    }

    fn log(&self) -> String {
        self.process.log()
    }

    async fn leases(&self) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let page: Value = reqwest::Client::new()
                .get(format!(
                    "{}/leases?limit=1000&offset={}",
                    self.api,
                    all.len()
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET /leases: {e}\n{}", self.log()))
                .json()
                .await
                .unwrap();
            let page = page.as_array().expect("a list").clone();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x97, b[0], b[1], b[2], b[3]]
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn request(mac: [u8; 6], kind: MessageType, extra: Vec<DhcpOption>) -> Message {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new(unspecified, unspecified, unspecified, unspecified, &mac);
    msg.set_xid(u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]));
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    for opt in extra {
        msg.opts_mut().insert(opt);
    }
    msg
}

/// Sends `msg` and waits for the answer of that type (retransmitting, as
/// a DHCP client does, while none comes).
async fn ask(server: SocketAddr, msg: &Message, want: MessageType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bytes = msg.to_vec().unwrap();
    let mut buf = vec![0u8; 2048];
    for _ in 0..20 {
        socket.send_to(&bytes, server).await.unwrap();
        if let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
        {
            let reply = Message::from_bytes(&buf[..len]).unwrap();
            if reply.opts().msg_type() == Some(want) {
                return reply;
            }
        }
    }
    panic!("no {want:?} for {:?}", msg.chaddr());
}

/// DISCOVER, OFFER, REQUEST, ACK: the address acknowledged.
async fn dora(server: SocketAddr, mac: [u8; 6]) -> Ipv4Addr {
    let offer = ask(
        server,
        &request(mac, MessageType::Discover, vec![]),
        MessageType::Offer,
    )
    .await;
    let server_id = match offer.opts().get(dhcproto::v4::OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(id)) => *id,
        other => panic!("no server identifier: {other:?}"),
    };
    let req = request(
        mac,
        MessageType::Request,
        vec![
            DhcpOption::RequestedIpAddress(offer.yiaddr()),
            DhcpOption::ServerIdentifier(server_id),
        ],
    );
    let ack = ask(server, &req, MessageType::Ack).await;
    assert_eq!(ack.yiaddr(), offer.yiaddr());
    ack.yiaddr()
}

/// The offer a DISCOVER from `mac` gets.
async fn offered(server: SocketAddr, mac: [u8; 6]) -> Ipv4Addr {
    ask(
        server,
        &request(mac, MessageType::Discover, vec![]),
        MessageType::Offer,
    )
    .await
    .yiaddr()
}

on_both_databases!(
    every_acknowledged_lease_survives_kill_9,
    |backend| async move {
        let test_db = common::TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cluster.toml"), CLUSTER).unwrap();
        let kiln = Kiln::start(&test_db.url, dir.path()).await;
        let server = kiln.dhcp;

        // 300 machines, 30 at a time: the ACKs of one burst share a commit.
        let mut acked: HashMap<String, Ipv4Addr> = HashMap::new();
        let macs: Vec<[u8; 6]> = (0..MACHINES).map(mac).collect();
        for chunk in macs.chunks(AT_ONCE) {
            let exchanges = chunk.iter().map(|m| {
                let m = *m;
                tokio::spawn(async move { (m, dora(server, m).await) })
            });
            for done in futures::future::join_all(exchanges).await {
                let (m, ip) = done.unwrap();
                acked.insert(mac_text(m), ip);
            }
        }
        let addresses: HashSet<Ipv4Addr> = acked.values().copied().collect();
        assert_eq!(addresses.len(), acked.len(), "one address per machine");
        // Right after the last ACK, before anything else can happen.
        kiln.kill_9().await;

        let kiln = Kiln::start(&test_db.url, dir.path()).await;
        let kept: HashMap<String, String> = kiln
            .leases()
            .await
            .iter()
            .map(|l| {
                (
                    l["mac"].as_str().unwrap().to_string(),
                    l["ip"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (mac, ip) in &acked {
            assert_eq!(
                kept.get(mac),
                Some(&ip.to_string()),
                "the ACK of {ip} to {mac} was lost by kill -9\n{}",
                kiln.log()
            );
        }
        // The restarted server holds them: new MACs get other addresses,
        // a known MAC its own.
        for i in 0..50 {
            let ip = offered(kiln.dhcp, mac(10_000 + i)).await;
            assert!(
                !addresses.contains(&ip),
                "{ip} was acknowledged to another MAC"
            );
        }
        let first = mac(0);
        assert_eq!(offered(kiln.dhcp, first).await, acked[&mac_text(first)]);
        let metrics = reqwest::get(format!("{}/metrics", kiln.api.trim_end_matches("/api/v2")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("kiln_dhcp_durable_acks_total"),
            "{metrics}"
        );
    }
);

on_both_databases!(
    a_batch_moves_macs_and_hands_lapsed_addresses_on,
    |backend| async move {
        use kiln::db::leases::{self, AckedLease, LeaseFilter};
        let test_db = common::TestDb::new(backend).await;
        let db = test_db.connect().await;
        let lease = |mac: &str, ip: &str| AckedLease {
            mac: mac.into(),
            ip: ip.into(),
            hostname: None,
            expires_at: chrono::Utc::now() + chrono::Duration::seconds(600),
        };
        let a = "02:97:00:00:00:0a";
        let b = "02:97:00:00:00:0b";
        leases::record_acked(&db, &[lease(a, "10.97.1.1")])
            .await
            .unwrap();
        // A moves on; B takes A's old address (retransmitted, so twice).
        leases::record_acked(
            &db,
            &[
                lease(a, "10.97.1.2"),
                lease(b, "10.97.1.1"),
                lease(b, "10.97.1.1"),
            ],
        )
        .await
        .unwrap();
        let all = leases::list(
            &db,
            &LeaseFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut pairs: Vec<(String, String)> = all.into_iter().map(|l| (l.mac, l.ip)).collect();
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                (a.to_string(), "10.97.1.2".to_string()),
                (b.to_string(), "10.97.1.1".to_string())
            ]
        );
    }
);
