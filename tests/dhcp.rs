//! kiln's DHCP server over real UDP on loopback: a known MAC gets its fixed
//! address and a boot file for its bootenv and client kind; an unknown MAC
//! gets a pool address and becomes a node; malformed packets are counted,
//! not fatal.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{self, DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use kiln::app::Application;
use kiln::cluster;
use kiln::db::Key;
use tokio::net::UdpSocket;

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "10.99.0.0/24"
router = "10.99.0.1"
dns = ["10.99.0.1"]
domain = "lab.example"
pool = ["10.99.0.100", "10.99.0.101"]

[[node]]
name = "admin.lab.example"
admin = true
alive = true
bootenv = "local"
interfaces = [{ mac = "52:54:00:00:00:fe", ip = "10.99.0.1" }]

[[node]]
name = "n1.lab.example"
alive = true
interfaces = [{ mac = "52:54:00:00:00:01", ip = "10.99.0.11" }]

[[deployment]]
name = "system"
commit = true
bindings = [{ role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] }]
"#;

fn request(mac: [u8; 6], kind: MessageType, extra: Vec<DhcpOption>) -> Message {
    let mut msg = Message::new(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    for opt in extra {
        msg.opts_mut().insert(opt);
    }
    msg
}

async fn exchange(server: std::net::SocketAddr, msg: &Message) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&msg.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(Message::from_bytes(&buf[..len]).unwrap()),
        _ => None,
    }
}

fn bootfile(msg: &Message) -> String {
    match msg.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

on_both_databases!(known_and_unknown_machines, |backend| async move {
    let test_db = common::TestDb::new(backend).await;
    let db = test_db.connect().await;
    let file = cluster::with_builtin_roles(
        cluster::parse(CLUSTER, std::path::Path::new("dhcp-test.toml")).unwrap(),
    )
    .unwrap();
    cluster::apply(&db, &file, false).await.unwrap();
    let mut settings = common::test_settings(&test_db);
    settings.dhcp.enabled = true;
    settings.dhcp.address = "127.0.0.1".into();
    settings.dhcp.port = 0;
    // These machines' addresses (10.99.0.x) are not on this host, so they
    // cannot fetch from them; tests/tokens.rs tests the address check.
    settings.auth.boot_address_check = false;
    let kiln = Application::build(settings).await.expect("kiln with dhcp");
    let server = kiln.dhcp().expect("dhcp running").local_addr;
    let stats = kiln.dhcp().unwrap().stats.clone();
    let state = kiln.state().clone();
    let base = format!("http://127.0.0.1:{}", kiln.port());
    common::stop_at_end(kiln.stopper());
    actix_web::rt::spawn(kiln.run_until_stopped());

    // A known machine's PXE firmware (BIOS): fixed address, options, iPXE binary.
    let known = [0x52, 0x54, 0, 0, 0, 1];
    let arch = |a: u16| DhcpOption::ClientSystemArchitecture(v4::Architecture::from(a));
    let offer = exchange(
        server,
        &request(known, MessageType::Discover, vec![arch(0)]),
    )
    .await
    .expect("offer");
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 99, 0, 11));
    assert_eq!(bootfile(&offer), "undionly.kpxe");
    assert!(
        matches!(offer.opts().get(OptionCode::Router), Some(DhcpOption::Router(r)) if r == &vec![Ipv4Addr::new(10, 99, 0, 1)])
    );
    assert!(
        matches!(offer.opts().get(OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "n1")
    );
    let uefi = exchange(
        server,
        &request(known, MessageType::Discover, vec![arch(7)]),
    )
    .await
    .unwrap();
    assert_eq!(bootfile(&uefi), "ipxe.efi");
    // iPXE itself asks: kiln's script URL.
    let ipxe = exchange(
        server,
        &request(
            known,
            MessageType::Discover,
            vec![DhcpOption::UserClass(b"iPXE".to_vec())],
        ),
    )
    .await
    .unwrap();
    assert!(
        bootfile(&ipxe).ends_with("/boot/52:54:00:00:00:01.ipxe"),
        "{}",
        bootfile(&ipxe)
    );
    let http = exchange(
        server,
        &request(
            known,
            MessageType::Discover,
            vec![
                DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016".to_vec()),
                arch(16),
            ],
        ),
    )
    .await
    .unwrap();
    assert!(
        bootfile(&http).starts_with("http://"),
        "{}",
        bootfile(&http)
    );
    // REQUEST for its address: ACK; for another: NAK.
    let ack = exchange(
        server,
        &request(
            known,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 99, 0, 11))],
        ),
    )
    .await
    .unwrap();
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    let nak = exchange(
        server,
        &request(
            known,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 99, 0, 50))],
        ),
    )
    .await
    .unwrap();
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));

    // Booting from disk: the DHCP database role re-runs and the answer
    // changes: no boot file, so the firmware moves on.
    state
        .orchestrator
        .update_node(
            &Key::Name("n1.lab.example".into()),
            kiln::db::nodes::NodeChange {
                bootenv: Some("local".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    state.orchestrator.wake_annealer();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let offer = exchange(
            server,
            &request(known, MessageType::Discover, vec![arch(0)]),
        )
        .await
        .unwrap();
        if bootfile(&offer).is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "DHCP still sends n1 a boot file after bootenv local"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An unknown machine: a pool address, then a node with discovery roles.
    let unknown = [0x52, 0x54, 0, 0xaa, 0, 7];
    let offer = exchange(
        server,
        &request(unknown, MessageType::Discover, vec![arch(0)]),
    )
    .await
    .unwrap();
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 99, 0, 100));
    let other = exchange(
        server,
        &request([0x52, 0x54, 0, 0xaa, 0, 8], MessageType::Discover, vec![]),
    )
    .await
    .unwrap();
    assert_eq!(
        other.yiaddr(),
        Ipv4Addr::new(10, 99, 0, 101),
        "a held offer is not handed out twice"
    );
    let ack = exchange(
        server,
        &request(
            unknown,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(offer.yiaddr())],
        ),
    )
    .await
    .unwrap();
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    // iPXE asks for its script straight after the ACK: the machine is
    // registered by then, so its discovery script names it and carries a
    // token it can call back with.
    let script = reqwest::get(format!("{base}/boot/52:54:00:aa:00:07.ipxe"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        script.contains("kiln.node=d525400aa0007.lab.example"),
        "{script}"
    );
    let token = script
        .split_whitespace()
        .find_map(|word| word.strip_prefix("kiln.token="))
        .unwrap_or_default();
    assert!(!token.is_empty(), "{script}");
    let callback = reqwest::Client::new()
        .put(format!("{base}/api/v2/nodes/d525400aa0007.lab.example"))
        .bearer_auth(token)
        .json(&serde_json::json!({"alive": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let node = loop {
        if let Ok(node) =
            kiln::db::nodes::get(&state.db, &Key::Name("d525400aa0007.lab.example".into())).await
        {
            break node;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new machine was not registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(node.bootenv, "sledgehammer");
    let roles: Vec<String> = kiln::db::noderoles::list_refs(
        &state.db,
        &kiln::db::noderoles::NoderoleFilter {
            node_id: Some(node.id),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.role)
    .collect();
    assert!(roles.contains(&"inventory".to_string()), "{roles:?}");

    // Garbage is counted and the server keeps answering.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(b"not dhcp at all", server).await.unwrap();
    let still = exchange(server, &request(known, MessageType::Discover, vec![])).await;
    assert!(still.is_some());
    assert!(stats.malformed.load(std::sync::atomic::Ordering::Relaxed) >= 1);
});

/// One TFTP read of a file shorter than a block, acknowledged; returns the
/// first packet the server sent back (DATA or ERROR).
async fn tftp_read(server: std::net::SocketAddr, file: &str) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rrq = vec![0, 1];
    for field in [file, "octet"] {
        rrq.extend_from_slice(field.as_bytes());
        rrq.push(0);
    }
    socket.send_to(&rrq, server).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a TFTP answer")
        .unwrap();
    if buf[1] == 3 {
        socket.send_to(&[0, 4, buf[2], buf[3]], from).await.unwrap();
    }
    buf[..len].to_vec()
}

/// The value of one sample line of Prometheus text, if present.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

on_both_databases!(metrics_count_dhcp_and_tftp, |backend| async move {
    let test_db = common::TestDb::new(backend).await;
    let db = test_db.connect().await;
    let file = cluster::with_builtin_roles(
        cluster::parse(CLUSTER, std::path::Path::new("dhcp-test.toml")).unwrap(),
    )
    .unwrap();
    cluster::apply(&db, &file, false).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("undionly.kpxe"), b"not really ipxe").unwrap();
    let mut settings = common::test_settings(&test_db);
    settings.dhcp.enabled = true;
    settings.dhcp.address = "127.0.0.1".into();
    settings.dhcp.port = 0;
    settings.tftp.enabled = true;
    settings.tftp.address = "127.0.0.1".into();
    settings.tftp.port = 0;
    settings.tftp.root = root.path().to_path_buf();
    let kiln = Application::build(settings)
        .await
        .expect("kiln with dhcp and tftp");
    let dhcp = kiln.dhcp().unwrap().local_addr;
    let tftp = kiln.tftp_addr().unwrap();
    let base = format!("http://127.0.0.1:{}", kiln.port());
    common::stop_at_end(kiln.stopper());
    actix_web::rt::spawn(kiln.run_until_stopped());

    let known = [0x52, 0x54, 0, 0, 0, 1];
    let offer = exchange(dhcp, &request(known, MessageType::Discover, vec![]))
        .await
        .expect("offer");
    let server_id = DhcpOption::ServerIdentifier(Ipv4Addr::LOCALHOST);
    let asked = |ip: Ipv4Addr| {
        request(
            known,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(ip), server_id.clone()],
        )
    };
    let ack = exchange(dhcp, &asked(offer.yiaddr())).await.expect("ack");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    let nak = exchange(dhcp, &asked(Ipv4Addr::new(10, 99, 0, 77)))
        .await
        .expect("nak");
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    let stranger = [0x52, 0x54, 0, 0, 0, 0x42];
    let pool = exchange(dhcp, &request(stranger, MessageType::Discover, vec![]))
        .await
        .expect("pool offer");
    assert_eq!(pool.yiaddr(), Ipv4Addr::new(10, 99, 0, 100));
    let garbage = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    garbage.send_to(b"not dhcp at all", dhcp).await.unwrap();
    let sent = tftp_read(tftp, "undionly.kpxe").await;
    assert_eq!(&sent[..4], &[0, 3, 0, 1], "DATA block 1");
    assert_eq!(&sent[4..], b"not really ipxe");
    assert_eq!(&tftp_read(tftp, "missing.efi").await[..2], &[0, 5], "ERROR");

    let expected = [
        ("kiln_dhcp_received_total", 5),
        ("kiln_dhcp_answered_total{type=\"offer\"}", 2),
        ("kiln_dhcp_answered_total{type=\"ack\"}", 1),
        ("kiln_dhcp_answered_total{type=\"nak\"}", 1),
        ("kiln_dhcp_malformed_total", 1),
        ("kiln_dhcp_pool_free{network=\"lab\"}", 1),
        ("kiln_tftp_transfers_total{outcome=\"completed\"}", 1),
        ("kiln_tftp_transfers_total{outcome=\"failed\"}", 1),
        ("kiln_runs_queued_total", 0),
    ];
    // The servers count a reply once it is sent and a transfer once its
    // last acknowledgement arrived, which the client may see first: read
    // until every count is in.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let all_in = expected
            .iter()
            .all(|(series, n)| sample(&metrics, series).is_some_and(|v| v >= *n));
        if all_in || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (series, n) in expected {
        if series == "kiln_runs_queued_total" {
            // The run counters stay beside the new ones.
            assert!(sample(&metrics, series).is_some(), "{series}:\n{metrics}");
            continue;
        }
        assert_eq!(sample(&metrics, series), Some(n), "{series}:\n{metrics}");
    }
});
