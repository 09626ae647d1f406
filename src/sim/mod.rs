//! Simulated machines: when a scheduled reboot is due (see
//! `provisioner::reboots`), the machine "reboots" and boots the way real
//! hardware would, through the same code paths — a DHCP exchange over UDP
//! with kiln's server (as iPXE, from loopback), the boot script over HTTP,
//! and the node callbacks with the token the script carried: install
//! (`bootenv: local`), reboot, boot from disk, `alive: true`. A machine
//! whose DHCP address is on loopback (127.0.0.0/8) calls from that
//! address, as a real one calls from its own, so the boot routes' address
//! check holds for it too.
//!
//! Their discovery images report an inventory (`inventory.rs`) whenever a
//! node's inventory role waits for one.
//!
//! The machines live in kiln's process: a kiln killed while one is
//! installing takes that machine down with it (its reboot was performed;
//! the install watchdog answers for it).

mod inventory;

pub use inventory::{simulated_inventory, InventoryReporter, MachineTokens};

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use futures::future::LocalBoxFuture;
use sea_orm::DatabaseConnection;
use tokio::net::UdpSocket;

use crate::actors::in_flight::Held;
use crate::actors::trace::TraceRecorder;
use crate::db::reboots::PendingReboot;
use crate::db::{nodes, Key};
use crate::provisioner::reboots::PowerCycle;
use crate::shutdown::Shutdown;

/// How simulated machines reach kiln.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub dhcp: SocketAddr,
    pub api_url: String,
    pub install_ms: u64,
}

/// Plays every machine whose reboot comes due.
pub struct Simulator {
    db: DatabaseConnection,
    config: Arc<SimConfig>,
    trace: Arc<TraceRecorder>,
    http: reqwest::Client,
    shutdown: Shutdown,
    tokens: MachineTokens,
}

impl Simulator {
    pub fn new(
        db: DatabaseConnection,
        config: SimConfig,
        trace: Arc<TraceRecorder>,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            shutdown,
            db,
            config: Arc::new(config),
            trace,
            http: reqwest::Client::new(),
            tokens: MachineTokens::default(),
        }
    }

    /// The node tokens its machines hold, for their inventory reports.
    pub fn tokens(&self) -> MachineTokens {
        self.tokens.clone()
    }
}

impl PowerCycle for Simulator {
    /// The machine is reset at once; it boots on its own from there,
    /// holding kiln unsettled until its last callback.
    fn cycle(
        &self,
        reboot: &PendingReboot,
        held: &Held,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let db = self.db.clone();
        let config = self.config.clone();
        let trace = self.trace.clone();
        let http = self.http.clone();
        let shutdown = self.shutdown.clone();
        let tokens = self.tokens.clone();
        let node_id = reboot.node_id;
        let held = held.another();
        Box::pin(async move {
            let view = nodes::get_view(&db, &Key::Id(node_id))
                .await
                .map_err(|e| e.to_string())?;
            let mac = view
                .interfaces
                .first()
                .map(|i| i.mac.clone())
                .ok_or_else(|| "node has no interface".to_string())?;
            let machine = Machine {
                config,
                trace,
                http,
                node: view.node.name,
                mac,
                tokens,
            };
            shutdown.spawn_local(async move {
                // Kiln is not settled while the machine boots.
                let _held = held;
                if let Err(e) = machine.power_cycle().await {
                    tracing::warn!(node = %machine.node, error = %e, "simulated machine gave up");
                }
            });
            Ok(())
        })
    }

    /// Every node may be a simulated machine.
    fn powers(&self, _: i64) -> LocalBoxFuture<'static, bool> {
        Box::pin(async { true })
    }
}

/// One simulated machine.
struct Machine {
    config: Arc<SimConfig>,
    trace: Arc<TraceRecorder>,
    http: reqwest::Client,
    node: String,
    mac: String,
    tokens: MachineTokens,
}

/// What a boot ended in.
enum Booted {
    Installer { token: String },
    Disk,
}

impl Machine {
    /// Reboot: network boot; an installer installs, calls back `local` and
    /// reboots; the disk calls back `alive`.
    async fn power_cycle(&self) -> Result<(), String> {
        let mut token = None;
        for _ in 0..3 {
            match self.network_boot().await? {
                Booted::Installer { token: t } => {
                    tokio::time::sleep(Duration::from_millis(self.config.install_ms)).await;
                    self.callback(&t, serde_json::json!({ "bootenv": "local" }))
                        .await?;
                    token = Some(t);
                    // The installer's own reboot takes a moment too.
                    tokio::time::sleep(Duration::from_millis(self.config.install_ms)).await;
                }
                Booted::Disk => {
                    let t = token.ok_or("booted from disk without an installed token")?;
                    return self
                        .callback(&t, serde_json::json!({ "alive": true }))
                        .await;
                }
            }
        }
        Err("still installing after three boots".into())
    }

    /// DHCP as iPXE would, then the boot script if DHCP named one.
    async fn network_boot(&self) -> Result<Booted, String> {
        let mac = self.mac.clone();
        self.trace
            .record("Machine", "Dhcp", "Discover", &self.node, "");
        let (boot_file, address) = self.dhcp_exchange(&mac).await?;
        let Some(url) = boot_file.filter(|f| f.starts_with("http")) else {
            tracing::debug!(node = %self.node, "no boot file: booting from disk");
            self.trace
                .record("Dhcp", "Machine", "Ack", &self.node, "disk");
            return Ok(Booted::Disk);
        };
        let script = self
            .client_from(address)?
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("boot script: {e}"))?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if !script.contains("kernel ") {
            tracing::debug!(node = %self.node, "boot script exits: booting from disk");
            self.trace
                .record("Dhcp", "Machine", "Ack", &self.node, "disk");
            return Ok(Booted::Disk);
        }
        self.trace
            .record("Dhcp", "Machine", "Ack", &self.node, "installer");
        let token = script
            .split_whitespace()
            .find_map(|w| w.strip_prefix("kiln.token="))
            .ok_or("installer script has no kiln.token")?
            .to_string();
        self.tokens.insert(self.node.clone(), token.clone());
        Ok(Booted::Installer { token })
    }

    /// An HTTP client calling from `address` when it is on loopback (so
    /// this host has it), else from 127.0.0.1.
    fn client_from(&self, address: Ipv4Addr) -> Result<reqwest::Client, String> {
        if !address.is_loopback() {
            return Ok(self.http.clone());
        }
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(address))
            .build()
            .map_err(|e| e.to_string())
    }

    /// DISCOVER then REQUEST; returns the boot file of the ACK and the
    /// address it gave.
    async fn dhcp_exchange(&self, mac: &str) -> Result<(Option<String>, Ipv4Addr), String> {
        let chaddr: Vec<u8> = mac
            .split(':')
            .filter_map(|h| u8::from_str_radix(h, 16).ok())
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let offer = self
            .send(&socket, &chaddr, MessageType::Discover, None)
            .await?;
        let ack = self
            .send(&socket, &chaddr, MessageType::Request, Some(offer.yiaddr()))
            .await?;
        if ack.opts().msg_type() != Some(MessageType::Ack) {
            return Err("DHCP did not acknowledge".into());
        }
        let boot_file = match ack.opts().get(OptionCode::BootfileName) {
            Some(DhcpOption::BootfileName(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        Ok((boot_file, ack.yiaddr()))
    }

    async fn send(
        &self,
        socket: &UdpSocket,
        chaddr: &[u8],
        kind: MessageType,
        requested: Option<Ipv4Addr>,
    ) -> Result<Message, String> {
        let mut msg = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            chaddr,
        );
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        msg.opts_mut()
            .insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        if let Some(ip) = requested {
            msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        }
        let bytes = msg.to_vec().map_err(|e| e.to_string())?;
        socket
            .send_to(&bytes, self.config.dhcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 2048];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .map_err(|_| "no DHCP answer".to_string())?
            .map_err(|e| e.to_string())?;
        Message::from_bytes(&buf[..len]).map_err(|e| e.to_string())
    }

    /// `PUT /api/v2/nodes/{name}` with the node's own token.
    async fn callback(&self, token: &str, body: serde_json::Value) -> Result<(), String> {
        self.trace
            .record("Machine", "Api", "Callback", &self.node, body.to_string());
        self.http
            .put(format!(
                "{}/api/v2/nodes/{}",
                self.config.api_url, self.node
            ))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("callback {body}: {e}"))?;
        Ok(())
    }
}
