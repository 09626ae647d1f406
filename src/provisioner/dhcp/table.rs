//! The DHCP server's view of the world: hosts by MAC, networks, leases.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use entity::network;

use crate::db::hosts::HostEntry;

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
    /// As the cluster file names it (metrics report pools by it).
    pub name: String,
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
            name: row.name.clone(),
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

/// Pool leases indexed both ways, so handing out an address costs the same
/// with 60,000 leases as with one (a rack powering on is a DHCP storm).
#[derive(Debug, Default)]
struct Leases {
    by_mac: HashMap<String, PoolLease>,
    by_ip: HashMap<Ipv4Addr, String>,
    /// Where the next search for a free address starts: just past the last
    /// address handed out, so a growing pool is not rescanned from its start.
    cursor: u32,
}

impl Leases {
    fn insert(&mut self, mac: &str, lease: PoolLease) {
        if let Some(old) = self.by_mac.insert(mac.to_string(), lease) {
            if old.ip != lease.ip {
                self.by_ip.remove(&old.ip);
            }
        }
        self.by_ip.insert(lease.ip, mac.to_string());
    }

    fn remove(&mut self, mac: &str) {
        if let Some(old) = self.by_mac.remove(mac) {
            self.by_ip.remove(&old.ip);
        }
    }

    /// Whether another MAC holds `ip` now; a lapsed holder is dropped.
    fn held_by_other(&mut self, ip: Ipv4Addr, mac: &str, now: Instant) -> bool {
        let Some(holder) = self.by_ip.get(&ip) else {
            return false;
        };
        if holder == mac {
            return false;
        }
        let live = self.by_mac.get(holder).is_some_and(|l| l.until > now);
        if !live {
            let holder = holder.clone();
            self.remove(&holder);
        }
        live
    }
}

/// Hosts, networks and pool leases, shared by the server and the jig that
/// refreshes it.
#[derive(Debug, Default)]
pub struct DhcpTable {
    hosts: DashMap<String, Host>,
    host_ips: RwLock<HashSet<Ipv4Addr>>,
    networks: Mutex<Vec<Network>>,
    leases: Mutex<Leases>,
    quarantined: DashMap<Ipv4Addr, Instant>,
}

impl DhcpTable {
    /// Replaces hosts and networks with the rows read from `db::hosts` and
    /// `db::networks`; returns how many hosts it holds.
    pub fn replace(&self, hosts: Vec<HostEntry>, networks: Vec<network::Model>) -> usize {
        let mut fresh = HashMap::new();
        for entry in hosts {
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
        let count = fresh.len();
        self.replace_hosts(fresh);
        let networks = networks.iter().filter_map(Network::parse).collect();
        *self.networks.lock().expect("networks lock") = networks;
        count
    }

    fn replace_hosts(&self, fresh: HashMap<String, Host>) {
        self.hosts.retain(|mac, _| fresh.contains_key(mac));
        *self.host_ips.write().expect("host addresses lock") =
            fresh.values().map(|h| h.ip).collect();
        for (mac, host) in fresh {
            self.hosts.insert(mac, host);
        }
    }

    /// Replaces the networks (tests; `replace` takes them as rows).
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
        let mut leases = self.leases.lock().expect("leases lock");
        if let Some(lease) = leases.by_mac.get_mut(mac) {
            if net.contains(lease.ip) {
                lease.until = lease.until.max(now + hold);
                return Some(lease.ip);
            }
        }
        let (start, end) = net.pool?;
        let (start, end) = (u32::from(start), u32::from(end));
        let size = end.checked_sub(start)? + 1;
        let first = if (start..=end).contains(&leases.cursor) {
            leases.cursor
        } else {
            start
        };
        let host_ips = self.host_ips.read().expect("host addresses lock");
        let ip = (0..size)
            .map(|step| Ipv4Addr::from(start + (first - start + step) % size))
            .find(|ip| {
                !host_ips.contains(ip)
                    && self.quarantined.get(ip).is_none_or(|t| *t <= now)
                    && !leases.held_by_other(*ip, mac, now)
            })?;
        leases.insert(
            mac,
            PoolLease {
                ip,
                until: now + hold,
            },
        );
        leases.cursor = u32::from(ip).wrapping_add(1);
        Some(ip)
    }

    /// Each network with a pool and how many of its addresses could be
    /// handed out now (not a known host's, not leased, not declined).
    pub fn pool_free(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        let networks = self.networks.lock().expect("networks lock").clone();
        let leases = self.leases.lock().expect("leases lock");
        let host_ips = self.host_ips.read().expect("host addresses lock");
        networks
            .into_iter()
            .filter_map(|net| {
                let (start, end) = net.pool?;
                let range = u32::from(start)..=u32::from(end);
                let size = u64::from(u32::from(end).checked_sub(u32::from(start))?) + 1;
                let taken: HashSet<Ipv4Addr> = host_ips
                    .iter()
                    .copied()
                    .chain(
                        leases
                            .by_mac
                            .values()
                            .filter(|l| l.until > now)
                            .map(|l| l.ip),
                    )
                    .chain(
                        self.quarantined
                            .iter()
                            .filter(|q| *q.value() > now)
                            .map(|q| *q.key()),
                    )
                    .filter(|ip| range.contains(&u32::from(*ip)))
                    .collect();
                Some((net.name, size - taken.len() as u64))
            })
            .collect()
    }

    /// The pool address `mac` holds now, if any.
    pub fn leased(&self, mac: &str) -> Option<Ipv4Addr> {
        self.leases
            .lock()
            .expect("leases lock")
            .by_mac
            .get(mac)
            .filter(|l| l.until > Instant::now())
            .map(|l| l.ip)
    }

    /// Holds the leases a previous kiln acknowledged (`db::leases::live`)
    /// until they expire: a restart never hands their addresses to another
    /// MAC. Returns how many it holds.
    pub fn restore(&self, rows: &[entity::lease::Model]) -> usize {
        let now = Instant::now();
        let wall = chrono::Utc::now();
        let mut leases = self.leases.lock().expect("leases lock");
        let mut restored = 0;
        for row in rows {
            let (Ok(ip), Ok(left)) = (row.ip.parse(), (row.expires_at - wall).to_std()) else {
                continue;
            };
            leases.insert(
                &row.mac,
                PoolLease {
                    ip,
                    until: now + left,
                },
            );
            restored += 1;
        }
        restored
    }

    /// Gives a pool address back (RELEASE).
    pub fn release(&self, mac: &str) {
        self.leases.lock().expect("leases lock").remove(mac);
    }

    /// A client said the address is in use elsewhere (DECLINE).
    pub fn decline(&self, mac: &str, ip: Ipv4Addr) {
        self.release(mac);
        self.quarantined
            .insert(ip, Instant::now() + Duration::from_secs(600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(pool: (&str, &str)) -> Network {
        Network {
            name: "lab".into(),
            address: "10.20.0.0".parse().unwrap(),
            prefix: 16,
            router: None,
            dns: Vec::new(),
            domain: String::new(),
            pool: Some((pool.0.parse().unwrap(), pool.1.parse().unwrap())),
            lease_secs: 3600,
        }
    }

    fn table_with_host(ip: &str) -> DhcpTable {
        let table = DhcpTable::default();
        let host = Host {
            node: "n1".into(),
            ip: ip.parse().unwrap(),
            local_boot: false,
        };
        table.replace_hosts(HashMap::from([("52:54:00:00:00:01".to_string(), host)]));
        table
    }

    fn mac(i: u32) -> String {
        let b = i.to_be_bytes();
        format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
    }

    #[test]
    fn a_storm_gets_distinct_addresses_around_hosts_until_the_pool_is_full() {
        let table = table_with_host("10.20.0.5");
        let net = network(("10.20.0.1", "10.20.39.16"));
        let hold = Duration::from_secs(60);
        let mut seen = HashSet::new();
        for i in 0..9999 {
            let ip = table
                .pool_address(&mac(i), &net, hold)
                .expect("a free address");
            assert_ne!(ip, "10.20.0.5".parse::<Ipv4Addr>().unwrap());
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
        assert_eq!(
            table.pool_address(&mac(10_000), &net, hold),
            None,
            "pool is full"
        );
        let again = table.pool_address(&mac(17), &net, hold);
        assert_eq!(again, table.leased(&mac(17)), "a MAC keeps its address");
    }

    #[test]
    fn restored_leases_are_held_for_their_macs_until_they_expire() {
        let table = DhcpTable::default();
        let net = network(("10.20.0.1", "10.20.0.2"));
        let row = |id, mac: &str, ip: &str, secs| entity::lease::Model {
            id,
            mac: mac.into(),
            ip: ip.into(),
            hostname: None,
            expires_at: chrono::Utc::now() + chrono::Duration::seconds(secs),
        };
        let restored = table.restore(&[
            row(1, &mac(1), "10.20.0.1", 600),
            row(2, &mac(2), "10.20.0.2", -5),
        ]);
        assert_eq!(restored, 1, "an expired lease is not held");
        let hold = Duration::from_secs(60);
        assert_eq!(table.leased(&mac(1)), Some("10.20.0.1".parse().unwrap()));
        assert_eq!(
            table.pool_address(&mac(3), &net, hold),
            Some("10.20.0.2".parse().unwrap()),
            "a new MAC never gets a restored lease's address"
        );
        assert_eq!(table.pool_address(&mac(4), &net, hold), None);
        assert_eq!(
            table.pool_address(&mac(1), &net, hold),
            Some("10.20.0.1".parse().unwrap())
        );
    }

    #[test]
    fn released_lapsed_and_declined_addresses() {
        let table = table_with_host("10.20.0.200");
        let net = network(("10.20.0.1", "10.20.0.3"));
        let short = Duration::from_millis(1);
        let hold = Duration::from_secs(60);
        let a = table.pool_address(&mac(1), &net, short).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let b = table.pool_address(&mac(2), &net, hold).unwrap();
        let c = table.pool_address(&mac(3), &net, hold).unwrap();
        // The pool is 3 addresses; the first lease lapsed, so a fourth MAC
        // gets it back.
        assert_eq!(table.pool_address(&mac(4), &net, hold), Some(a));
        assert_eq!(table.leased(&mac(1)), None);
        table.release(&mac(2));
        assert_eq!(table.pool_address(&mac(5), &net, hold), Some(b));
        table.decline(&mac(3), c);
        assert_eq!(
            table.pool_address(&mac(6), &net, hold),
            None,
            "declined address is quarantined"
        );
    }
}
