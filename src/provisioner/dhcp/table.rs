//! The DHCP server's view of the world: hosts by MAC, networks, leases.

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use entity::network;
use sea_orm::{DatabaseConnection, EntityTrait};

/// A known interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub node: String,
    pub ip: Ipv4Addr,
    /// The bootenv boots from disk: no boot file.
    pub local_boot: bool,
}

/// A subnet kiln answers for.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: String,
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    pub lease_secs: u32,
}

impl Network {
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask()) == u32::from(self.address) & u32::from(self.mask())
    }

    fn parse(row: &network::Model) -> Option<Self> {
        let (addr, prefix) = row.subnet.split_once('/')?;
        let dns = row
            .dns
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        let pool = match (&row.pool_start, &row.pool_end) {
            (Some(a), Some(b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            _ => None,
        };
        Some(Self {
            address: addr.parse().ok()?,
            prefix: prefix.parse().ok().filter(|p| *p <= 32)?,
            router: row.router.as_deref().and_then(|r| r.parse().ok()),
            dns,
            domain: row.domain.clone(),
            pool,
            lease_secs: row.lease_secs.max(60) as u32,
        })
    }
}

/// A pool address held for an unknown MAC.
#[derive(Debug, Clone, Copy)]
struct PoolLease {
    ip: Ipv4Addr,
    until: Instant,
}

/// Hosts, networks and pool leases, shared by the server and the jig that
/// refreshes it.
#[derive(Debug, Default)]
pub struct DhcpTable {
    hosts: DashMap<String, Host>,
    networks: Mutex<Vec<Network>>,
    leases: DashMap<String, PoolLease>,
    quarantined: DashMap<Ipv4Addr, Instant>,
}

impl DhcpTable {
    /// Reloads hosts and networks from the database (a few queries).
    pub async fn load(&self, db: &DatabaseConnection) -> Result<usize, sea_orm::DbErr> {
        let mut fresh = std::collections::HashMap::new();
        for entry in crate::provisioner::export::hosts(db).await? {
            let Ok(ip) = entry.ip.parse() else { continue };
            fresh.insert(
                entry.mac,
                Host {
                    node: entry.name,
                    ip,
                    local_boot: entry.local_boot,
                },
            );
        }
        self.hosts.retain(|mac, _| fresh.contains_key(mac));
        let count = fresh.len();
        for (mac, host) in fresh {
            self.hosts.insert(mac, host);
        }
        let networks = network::Entity::find()
            .all(db)
            .await?
            .iter()
            .filter_map(Network::parse)
            .collect();
        *self.networks.lock().expect("networks lock") = networks;
        Ok(count)
    }

    /// Replaces the networks (tests; `load` reads them from the database).
    pub fn set_networks(&self, networks: Vec<Network>) {
        *self.networks.lock().expect("networks lock") = networks;
    }

    pub fn host(&self, mac: &str) -> Option<Host> {
        self.hosts.get(mac).map(|h| h.clone())
    }

    /// The network an address (or a relay's giaddr) belongs to.
    pub fn network_for(&self, ip: Ipv4Addr) -> Option<Network> {
        self.networks
            .lock()
            .expect("networks lock")
            .iter()
            .find(|n| n.contains(ip))
            .cloned()
    }

    /// The first network with a pool (for clients not behind a relay).
    pub fn default_pool_network(&self) -> Option<Network> {
        self.networks
            .lock()
            .expect("networks lock")
            .iter()
            .find(|n| n.pool.is_some())
            .cloned()
    }

    /// The pool address for `mac`: the one it holds, or a free one, held
    /// for `hold`. Never an address of a known host, another live lease or
    /// a declined one.
    pub fn pool_address(&self, mac: &str, net: &Network, hold: Duration) -> Option<Ipv4Addr> {
        let now = Instant::now();
        if let Some(mut lease) = self.leases.get_mut(mac) {
            if net.contains(lease.ip) {
                lease.until = lease.until.max(now + hold);
                return Some(lease.ip);
            }
        }
        let (start, end) = net.pool?;
        let taken = |ip: Ipv4Addr| {
            self.hosts.iter().any(|h| h.ip == ip)
                || self
                    .leases
                    .iter()
                    .any(|l| l.key() != mac && l.ip == ip && l.until > now)
                || self.quarantined.get(&ip).is_some_and(|t| *t > now)
        };
        let ip = (u32::from(start)..=u32::from(end))
            .map(Ipv4Addr::from)
            .find(|ip| !taken(*ip))?;
        self.leases.insert(
            mac.to_string(),
            PoolLease {
                ip,
                until: now + hold,
            },
        );
        Some(ip)
    }

    /// The pool address `mac` holds now, if any.
    pub fn leased(&self, mac: &str) -> Option<Ipv4Addr> {
        self.leases
            .get(mac)
            .filter(|l| l.until > Instant::now())
            .map(|l| l.ip)
    }

    /// Gives a pool address back (RELEASE).
    pub fn release(&self, mac: &str) {
        self.leases.remove(mac);
    }

    /// A client said the address is in use elsewhere (DECLINE).
    pub fn decline(&self, mac: &str, ip: Ipv4Addr) {
        self.leases.remove(mac);
        self.quarantined
            .insert(ip, Instant::now() + Duration::from_secs(600));
    }
}
