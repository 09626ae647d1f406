//! Boot-time trust and the admin token, over real HTTP and real UDP on
//! loopback: a node token goes only to the node's own address, once per
//! boot, and may only move the node forward (a local bootenv, alive); the
//! admin token travels in the header (the event stream also takes
//! `?token=`), and a weak one is refused beyond loopback.
//!
//! Nodes here have addresses in 127.0.0.0/8, which loopback answers, and
//! "machines" call from them by binding their client to that address.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{spawn_app_with, TestApp, TEST_TOKEN};
use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Encodable};
use futures::StreamExt;
use kiln::app::Application;
use kiln::cluster;
use kiln::db::bootenvs::{self, BootenvSpec};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

const INSTALL: &str = "ubuntu-24.04-install";
const MAC: &str = "52:54:00:00:00:21";
const NODE: &str = "n1.lab.example";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);

/// A client calling from `ip`, as the machine with that address would.
fn machine(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

fn token_in(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("kiln.token="))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

async fn install_bootenv(app: &TestApp) {
    bootenvs::upsert(
        &app.db,
        &BootenvSpec {
            name: INSTALL.into(),
            kind: bootenvs::BootenvKind::Ipxe,
            kernel: "ubuntu/linux".into(),
            initrd: "ubuntu/initrd.gz".into(),
            append: "kiln.node={{node_name}} kiln.token={{node_token}} url={{answer_url}}".into(),
            template: "# kiln.token={{node_token}}\n".into(),
            description: String::new(),
        },
    )
    .await
    .unwrap();
}

/// kiln with one node on the installer, address `NODE_IP`.
async fn installing_node(backend: kiln::db::Backend) -> TestApp {
    let app = spawn_app_with(backend, |_| {}).await;
    install_bootenv(&app).await;
    let resp = app
        .post("/api/v2/nodes")
        .json(&json!({"name": NODE, "bootenv": INSTALL,
            "interfaces": [{"mac": MAC, "ip": NODE_IP.to_string()}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    app
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let resp = client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// `PUT /api/v2/nodes/{NODE}` with a node token: status and body.
async fn callback(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let resp = machine(NODE_IP)
        .put(format!("{}/api/v2/nodes/{NODE}", app.address))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn error_field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or_default()
}

on_both_databases!(
    another_address_gets_no_token_and_a_second_fetch_keeps_the_first,
    |backend| async move {
        let app = installing_node(backend).await;
        let script = format!("/boot/{MAC}.ipxe");

        // A stranger on the network asks first: refused, and nothing issued.
        let (status, body) = get(&app, &machine(Ipv4Addr::new(127, 0, 0, 99)), &script).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(token_in(&body), None, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "forbidden", "{body}");
        let (status, _) = get(
            &app,
            &machine(Ipv4Addr::new(127, 0, 0, 99)),
            &format!("/boot/answers/{MAC}"),
        )
        .await;
        assert_eq!(status, 403, "the answer file carries the token too");

        // The machine itself: its token, once for this boot.
        let (status, first) = get(&app, &machine(NODE_IP), &script).await;
        assert_eq!(status, 200, "{first}");
        let token = token_in(&first).expect("the node's first script carries a token");
        let (_, again) = get(&app, &machine(NODE_IP), &script).await;
        let (_, answers) = get(&app, &machine(NODE_IP), &format!("/boot/answers/{MAC}")).await;
        for later in [&again, &answers] {
            assert!(
                token_in(later).is_none_or(|t| t == token),
                "a later fetch in the same boot gives no new token: {later}"
            );
        }

        // The first token still works: the second fetch did not replace it.
        let (status, body) = callback(&app, &token, json!({"bootenv": "local"})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = callback(&app, &token, json!({"alive": true})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["alive"], true);
    }
);

on_both_databases!(
    a_node_token_only_moves_the_node_forward,
    |backend| async move {
        let app = installing_node(backend).await;
        let (_, script) = get(&app, &machine(NODE_IP), &format!("/boot/{MAC}.ipxe")).await;
        let token = token_in(&script).expect("token");

        for (body, field) in [
            (json!({"bootenv": INSTALL}), "bootenv"),
            (json!({"bootenv": "sledgehammer"}), "bootenv"),
            (json!({"bootenv": "no-such-bootenv"}), "bootenv"),
            (json!({"bootenv": INSTALL, "alive": false}), "alive"),
            (json!({"alive": false}), "alive"),
            (json!({"available": false}), "available"),
            (json!({"target_os": "debian-12"}), "target_os"),
        ] {
            let (status, answer) = callback(&app, &token, body.clone()).await;
            assert_eq!(status, 403, "{body} -> {answer}");
            assert_eq!(error_field(&answer), field, "{body} -> {answer}");
        }
        let node: Value = app
            .get(&format!("/api/v2/nodes/{NODE}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(node["bootenv"], INSTALL, "nothing refused was applied");
        assert_eq!(node["available"], true);

        // Another node's token, or none that matches: 401.
        let (status, _) = callback(&app, "not-the-token", json!({"alive": true})).await;
        assert_eq!(status, 401);
        let (status, body) =
            callback(&app, &token, json!({"alive": true, "bootenv": "local"})).await;
        assert_eq!(status, 200, "{body}");
    }
);

on_both_databases!(
    answers_of_a_node_on_local_give_no_token,
    |backend| async move {
        let app = installing_node(backend).await;
        app.put(&format!("/api/v2/nodes/{NODE}"))
            .json(&json!({"bootenv": "local"}))
            .send()
            .await
            .unwrap();
        let (status, body) = get(&app, &machine(NODE_IP), &format!("/boot/answers/{MAC}")).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(token_in(&body), None, "{body}");
        let (status, script) = get(&app, &machine(NODE_IP), &format!("/boot/{MAC}.ipxe")).await;
        assert_eq!(status, 200);
        assert!(
            script.contains("exit") && token_in(&script).is_none(),
            "{script}"
        );
    }
);

on_both_databases!(the_address_check_can_be_turned_off, |backend| async move {
    let app = spawn_app_with(backend, |s| s.auth.boot_address_check = false).await;
    install_bootenv(&app).await;
    app.post("/api/v2/nodes")
        .json(&json!({"name": NODE, "bootenv": INSTALL,
            "interfaces": [{"mac": MAC, "ip": "10.99.0.21"}]}))
        .send()
        .await
        .unwrap();
    let (status, script) = get(&app, &app.client, &format!("/boot/{MAC}.ipxe")).await;
    assert_eq!(status, 200, "{script}");
    assert!(token_in(&script).is_some(), "{script}");
});

const DHCP_CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "127.0.98.0/24"
router = "127.0.98.1"
domain = "lab.example"

[[bootenv]]
name = "ubuntu-24.04-install"
kernel = "ubuntu/linux"
initrd = "ubuntu/initrd.gz"
append = "kiln.node={{node_name}} kiln.token={{node_token}}"

[[node]]
name = "n1.lab.example"
bootenv = "ubuntu-24.04-install"
interfaces = [{ mac = "52:54:00:00:00:21", ip = "127.0.98.21" }]
"#;

/// DISCOVER then REQUEST as `mac`, iPXE (a network boot) or an installed
/// system (no boot options); the ACK's address.
async fn dhcp_exchange(server: std::net::SocketAddr, ipxe: bool) -> Ipv4Addr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut offered = None;
    for kind in [MessageType::Discover, MessageType::Request] {
        let mut msg = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0x52, 0x54, 0, 0, 0, 0x21],
        );
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        if ipxe {
            msg.opts_mut()
                .insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        }
        if let Some(ip) = offered {
            msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        }
        socket
            .send_to(&msg.to_vec().unwrap(), server)
            .await
            .unwrap();
        let mut buf = vec![0u8; 2048];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("a DHCP answer")
            .unwrap();
        let reply = Message::from_bytes(&buf[..len]).unwrap();
        offered = Some(reply.yiaddr());
        if kind == MessageType::Request {
            assert_eq!(reply.opts().msg_type(), Some(MessageType::Ack));
        }
    }
    offered.unwrap()
}

on_both_databases!(a_network_boot_issues_a_new_token, |backend| async move {
    let test_db = common::TestDb::new(backend).await;
    let db = test_db.connect().await;
    let file = cluster::parse(DHCP_CLUSTER, std::path::Path::new("tokens.toml")).unwrap();
    cluster::apply(&db, &file, false).await.unwrap();
    let mut settings = common::test_settings(&test_db);
    settings.dhcp.enabled = true;
    settings.dhcp.address = "127.0.0.1".into();
    settings.dhcp.port = 0;
    let kiln = Application::build(settings).await.expect("kiln with dhcp");
    let server = kiln.dhcp().unwrap().local_addr;
    let base = format!("http://127.0.0.1:{}", kiln.port());
    common::stop_at_end(kiln.stopper());
    actix_web::rt::spawn(kiln.run_until_stopped());
    let script_url = format!("{base}/boot/{MAC}.ipxe");
    let node_ip = Ipv4Addr::new(127, 0, 98, 21);
    let fetch = || async {
        let text = machine(node_ip)
            .get(&script_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        token_in(&text)
    };
    let node_url = format!("{base}/api/v2/nodes/{NODE}");
    let call = |token: String| {
        let url = node_url.clone();
        async move {
            machine(node_ip)
                .put(url)
                .bearer_auth(token)
                .json(&json!({"alive": true}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // First boot: iPXE's DHCP, then its script.
    assert_eq!(dhcp_exchange(server, true).await, node_ip);
    let first = fetch().await.expect("the first boot's token");
    // The booted system renews its lease: not a new boot, same token.
    dhcp_exchange(server, false).await;
    assert!(fetch().await.is_none_or(|t| t == first));
    assert_eq!(call(first.clone()).await, 200);

    // The machine reboots: iPXE's DHCP again, and a new token replaces the old.
    dhcp_exchange(server, true).await;
    let second = fetch().await.expect("the second boot's token");
    assert_ne!(first, second);
    assert_eq!(call(first).await, 401, "the previous boot's token is gone");
    assert_eq!(call(second).await, 200);
    drop(db);
});

on_both_databases!(
    the_admin_token_in_a_url_opens_only_the_event_stream,
    |backend| async move {
        let app = installing_node(backend).await;
        let url = |path: &str| format!("{}{path}?token={TEST_TOKEN}", app.address);
        let status = app
            .client
            .delete(url(&format!("/api/v2/nodes/{NODE}")))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
        let status = app
            .client
            .get(url("/api/v2/roles"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
        let node = app
            .get(&format!("/api/v2/nodes/{NODE}"))
            .send()
            .await
            .unwrap();
        assert_eq!(node.status(), 200, "the node is still there");

        let stream = app.client.get(url("/api/v2/events")).send().await.unwrap();
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let mut chunks = stream.bytes_stream();
        let hello = chunks.next().await.unwrap().unwrap();
        assert!(hello.starts_with(b": kiln events"));
        drop(chunks);
        // A fact written to the closed stream ends it, so kiln stops at once.
        app.post("/api/v2/deployments")
            .json(&json!({"name": "after-the-stream"}))
            .send()
            .await
            .unwrap();
        let status = app
            .client
            .get(format!("{}/api/v2/events?token=wrong", app.address))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
);

on_both_databases!(
    a_weak_admin_token_is_refused_beyond_loopback,
    |backend| async move {
        let test_db = common::TestDb::new(backend).await;
        for weak in ["short-token", "                    ", " \t\n "] {
            let mut settings = common::test_settings(&test_db);
            settings.http.bind = "0.0.0.0:0".into();
            settings.auth.admin_token = weak.into();
            let refused = Application::build(settings)
                .await
                .err()
                .map(|e| e.to_string());
            let message =
                refused.unwrap_or_else(|| panic!("kiln started with admin token {weak:?}"));
            assert!(message.contains("auth.admin_token"), "{message}");
        }
        // On loopback a short token is the operator's business.
        let mut settings = common::test_settings(&test_db);
        settings.auth.admin_token = "short".into();
        let kiln = Application::build(settings)
            .await
            .expect("a short token on loopback");
        common::stop_at_end(kiln.stopper());
        actix_web::rt::spawn(kiln.run_until_stopped());
    }
);
