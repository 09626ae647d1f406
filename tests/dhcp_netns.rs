//! kiln's DHCP server against a real DHCP client (busybox udhcpc) across a
//! veth pair between two network namespaces the test creates and always
//! removes. Only addresses inside those namespaces are used.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use kiln::cluster;
use kiln::provisioner::dhcp::{open_socket, start, BootContext, DhcpTable};

const SERVER_IP: &str = "10.213.7.1";
const KNOWN_MAC: &str = "52:54:00:13:07:11";
const UNKNOWN_MAC: &str = "52:54:00:13:07:99";

static SEQ: AtomicU32 = AtomicU32::new(0);

fn require_tool(binary: &str, package: &str) -> PathBuf {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{binary}` not found: install the Debian package `{package}`"))
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair; removed on drop, even on panic.
struct Netns {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
}

impl Netns {
    fn create(client_mac: &str) -> Self {
        require_tool("ip", "iproute2");
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let net = Netns {
            server_ns: format!("kiln-ds{tag}"),
            client_ns: format!("kiln-dc{tag}"),
            server_if: format!("kds{tag}"),
            client_if: format!("kdc{tag}"),
        };
        ip(&["netns", "add", &net.server_ns]);
        ip(&["netns", "add", &net.client_ns]);
        ip(&[
            "link",
            "add",
            &net.server_if,
            "type",
            "veth",
            "peer",
            "name",
            &net.client_if,
        ]);
        ip(&["link", "set", &net.server_if, "netns", &net.server_ns]);
        ip(&["link", "set", &net.client_if, "netns", &net.client_ns]);
        ip(&[
            "-n",
            &net.server_ns,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            &net.server_if,
        ]);
        ip(&["-n", &net.server_ns, "link", "set", &net.server_if, "up"]);
        ip(&[
            "-n",
            &net.client_ns,
            "link",
            "set",
            &net.client_if,
            "address",
            client_mac,
        ]);
        ip(&["-n", &net.client_ns, "link", "set", &net.client_if, "up"]);
        net
    }

    /// The DHCP socket, opened inside the server namespace on a thread of
    /// its own (setns changes only that thread), bound to the veth.
    fn server_socket(&self) -> std::net::UdpSocket {
        let ns_path = PathBuf::from("/run/netns").join(&self.server_ns);
        let interface = self.server_if.clone();
        std::thread::spawn(move || {
            let ns = fs::File::open(&ns_path).expect("open netns");
            // SAFETY: setns on this dedicated thread changes only its own
            // network namespace; the descriptor is valid for the call.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            open_socket("0.0.0.0:67".parse().unwrap(), &interface).expect("dhcp socket")
        })
        .join()
        .expect("socket thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// One udhcpc run as a BIOS PXE client; the variables of its `bound` call.
async fn udhcpc(net: &Netns, dir: &Path) -> Vec<(String, String)> {
    let busybox = require_tool("busybox", "busybox-static");
    let script = dir.join("udhcpc.sh");
    let out = dir.join("bound.env");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let status = tokio::process::Command::new("ip")
        .args(["netns", "exec", &net.client_ns])
        .arg(&busybox)
        .args([
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-t",
            "6",
            "-T",
            "1",
            "-i",
            &net.client_if,
        ])
        .args([
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x5d:0000",
            "-O",
            "bootfile",
        ])
        .arg("-s")
        .arg(&script)
        .output()
        .await
        .expect("run udhcpc");
    assert!(
        status.status.success(),
        "udhcpc failed: {}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    fs::read_to_string(&out)
        .expect("udhcpc ran its bound script")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn var<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("udhcpc did not set `{name}`: {env:?}"))
}

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "10.213.7.0/24"
router = "10.213.7.1"
dns = ["10.213.7.1"]
domain = "lab.example"
pool = ["10.213.7.100", "10.213.7.110"]

[[node]]
name = "n1.lab.example"
interfaces = [{ mac = "52:54:00:13:07:11", ip = "10.213.7.11" }]
"#;

async fn serve(
    backend: kiln::db::Backend,
    net: &Netns,
) -> (
    common::TestDb,
    tokio::sync::mpsc::UnboundedReceiver<(String, std::net::Ipv4Addr)>,
) {
    let test_db = common::TestDb::new(backend).await;
    let db = test_db.connect().await;
    let file = cluster::parse(CLUSTER, Path::new("netns.toml")).unwrap();
    cluster::apply(&db, &file, false).await.unwrap();
    let table = Arc::new(DhcpTable::default());
    table.replace(
        kiln::db::hosts::list(&db).await.unwrap(),
        kiln::db::networks::list(&db).await.unwrap(),
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = BootContext {
        server_ip: SERVER_IP.parse().unwrap(),
        api_url: format!("http://{SERVER_IP}:3000"),
    };
    let shutdown = kiln::shutdown::Shutdown::default();
    start(
        net.server_socket(),
        table,
        ctx,
        db.clone(),
        tx,
        Default::default(),
        &shutdown,
    )
    .unwrap();
    (test_db, rx)
}

on_both_databases!(
    known_mac_gets_reserved_address_and_boot_file,
    |backend| async move {
        let net = Netns::create(KNOWN_MAC);
        let (_db, mut rx) = serve(backend, &net).await;
        let dir = tempfile::tempdir().unwrap();
        let env = udhcpc(&net, dir.path()).await;
        assert_eq!(var(&env, "ip"), "10.213.7.11");
        assert_eq!(var(&env, "router"), SERVER_IP);
        assert_eq!(var(&env, "hostname"), "n1");
        assert_eq!(var(&env, "boot_file"), "undionly.kpxe");
        assert_eq!(var(&env, "siaddr"), SERVER_IP);
        assert!(rx.try_recv().is_err(), "a known machine is not new");
    }
);

on_both_databases!(
    unknown_mac_gets_a_pool_address_and_is_reported,
    |backend| async move {
        let net = Netns::create(UNKNOWN_MAC);
        let (_db, mut rx) = serve(backend, &net).await;
        let dir = tempfile::tempdir().unwrap();
        let env = udhcpc(&net, dir.path()).await;
        assert_eq!(var(&env, "ip"), "10.213.7.100");
        let (mac, ip) = rx.recv().await.expect("new machine reported");
        assert_eq!(mac, UNKNOWN_MAC);
        assert_eq!(ip.to_string(), "10.213.7.100");
    }
);
