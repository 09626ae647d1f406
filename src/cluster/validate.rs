//! A cluster file checked as a whole, against what the database already
//! holds, before anything is written: duplicates within the file, addresses
//! and networks that kiln's DHCP server could never answer from, and data
//! its jigs cannot read. Each refusal names the file, the line, the object
//! and the field.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::file::{to_json, At, ClusterFile};
use super::ClusterError;
use crate::db::nodes::normalise_mac;
use crate::domain::{BootenvKind, JigKind};
use crate::jigs::check_data;

/// What the database holds that a file's definitions may refer to or
/// collide with.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Networks as (name, subnet).
    pub networks: Vec<(String, String)>,
    pub interfaces: Vec<KnownInterface>,
    pub roles: Vec<(String, JigKind)>,
    pub bootenvs: Vec<String>,
    pub nodes: Vec<String>,
    pub deployments: Vec<String>,
}

/// An interface already stored, with its node's name.
#[derive(Debug, Clone)]
pub struct KnownInterface {
    pub node: String,
    pub mac: String,
    pub ip: Option<String>,
}

/// Refuses `file` with the first problem found; otherwise returns the
/// warnings (addresses that cannot be checked because no network is
/// declared anywhere), each naming file and line.
pub fn check(file: &ClusterFile, known: &Known) -> Result<Vec<String>, ClusterError> {
    let subnets = check_networks(file, known)?;
    check_roles(file, known)?;
    check_bootenvs(file)?;
    let warnings = check_nodes(file, known, &subnets)?;
    check_deployments(file, known)?;
    Ok(warnings)
}

fn refuse(at: &At, path: &[&str], field: String, reason: String) -> ClusterError {
    ClusterError::Invalid {
        file: at.file.clone(),
        line: at.line(path),
        field,
        reason,
    }
}

fn line_note(at: &At, path: &[&str]) -> String {
    at.line(path)
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default()
}

/// The second definition of a name is refused, pointing at the first.
fn no_duplicates<'a, T>(
    items: &'a [T],
    kind: &str,
    name_of: impl Fn(&'a T) -> (&'a String, &'a At),
) -> Result<(), ClusterError> {
    let mut seen: HashMap<&str, &At> = HashMap::new();
    for item in items {
        let (name, at) = name_of(item);
        if let Some(first) = seen.insert(name, at) {
            return Err(refuse(
                at,
                &["name"],
                format!("{kind} {name}"),
                format!(
                    "duplicate {kind} name: `{name}` is already defined{}",
                    line_note(first, &["name"])
                ),
            ));
        }
    }
    Ok(())
}

/// An IPv4 network: address and prefix.
#[derive(Debug, Clone)]
struct Subnet {
    name: String,
    address: u32,
    prefix: u8,
}

impl Subnet {
    fn parse(name: &str, raw: &str) -> Result<Self, String> {
        let (addr, prefix) = raw
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not address/prefix, e.g. 10.99.0.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 =
            prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
                format!("invalid prefix /{prefix}: IPv4 prefixes run from /0 to /32")
            })?;
        let subnet = Self {
            name: name.to_string(),
            address: u32::from(addr),
            prefix,
        };
        let network = subnet.address & subnet.mask();
        if network != subnet.address {
            return Err(format!(
                "`{raw}` has host bits set: the network is {}/{prefix}",
                Ipv4Addr::from(network)
            ));
        }
        Ok(subnet)
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    fn broadcast(&self) -> u32 {
        self.address | !self.mask()
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.address
    }

    fn overlaps(&self, other: &Subnet) -> bool {
        let mask = self.mask() & other.mask();
        self.address & mask == other.address & mask
    }

    /// Why a host may not have `ip` on this network, if it may not: the
    /// network and broadcast addresses of a /30 or larger are not hosts.
    fn not_a_host(&self, ip: Ipv4Addr) -> Option<&'static str> {
        let ip = u32::from(ip);
        if self.prefix > 30 {
            None
        } else if ip == self.address {
            Some("network address")
        } else if ip == self.broadcast() {
            Some("broadcast address")
        } else {
            None
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.address), self.prefix)
    }
}

fn ipv4(raw: &str) -> Result<Ipv4Addr, String> {
    raw.parse()
        .map_err(|_| format!("`{raw}` is not an IPv4 address"))
}

/// Every network's own fields, no two overlapping (in the file or with a
/// stored network the file does not redefine); returns all the networks
/// addresses may lie in.
fn check_networks(file: &ClusterFile, known: &Known) -> Result<Vec<Subnet>, ClusterError> {
    no_duplicates(&file.networks, "network", |n| (&n.name, &n.at))?;
    let mut subnets: Vec<Subnet> = Vec::new();
    for n in &file.networks {
        let field = |f: &str| format!("network {} {f}", n.name);
        let subnet = Subnet::parse(&n.name, &n.subnet)
            .map_err(|r| refuse(&n.at, &["subnet"], field("subnet"), r))?;
        let stored = known
            .networks
            .iter()
            .filter(|(name, _)| !file.networks.iter().any(|f| f.name == *name))
            .filter_map(|(name, raw)| Subnet::parse(name, raw).ok());
        if let Some(other) = subnets
            .iter()
            .cloned()
            .chain(stored)
            .find(|o| o.overlaps(&subnet))
        {
            return Err(refuse(
                &n.at,
                &["subnet"],
                field("subnet"),
                format!("{subnet} overlaps network {} ({other})", other.name),
            ));
        }
        let host = |path: &[&str], f: String, raw: &str| -> Result<Ipv4Addr, ClusterError> {
            let ip = ipv4(raw).map_err(|r| refuse(&n.at, path, f.clone(), r))?;
            if !subnet.contains(ip) {
                return Err(refuse(&n.at, path, f, format!("{ip} is outside {subnet}")));
            }
            if let Some(what) = subnet.not_a_host(ip) {
                return Err(refuse(
                    &n.at,
                    path,
                    f,
                    format!("{ip} is the {what} of {subnet}"),
                ));
            }
            Ok(ip)
        };
        if let Some(router) = &n.router {
            host(&["router"], field("router"), router)?;
        }
        for (i, dns) in n.dns.iter().enumerate() {
            let index = i.to_string();
            ipv4(dns)
                .map_err(|r| refuse(&n.at, &["dns", &index], field(&format!("dns[{i}]")), r))?;
        }
        if let Some([start, end]) = &n.pool {
            let first = host(&["pool", "0"], field("pool"), start)?;
            let last = host(&["pool", "1"], field("pool"), end)?;
            if first > last {
                return Err(refuse(
                    &n.at,
                    &["pool"],
                    field("pool"),
                    format!("the pool starts after it ends ({first} > {last})"),
                ));
            }
        }
        if n.lease_secs < 60 {
            return Err(refuse(
                &n.at,
                &["lease_secs"],
                field("lease_secs"),
                format!("must be at least 60 seconds, not {}", n.lease_secs),
            ));
        }
        subnets.push(subnet);
    }
    let stored = known
        .networks
        .iter()
        .filter(|(name, _)| !file.networks.iter().any(|f| f.name == *name))
        .filter_map(|(name, raw)| Subnet::parse(name, raw).ok());
    subnets.extend(stored);
    Ok(subnets)
}

fn check_bootenvs(file: &ClusterFile) -> Result<(), ClusterError> {
    no_duplicates(&file.bootenvs, "bootenv", |b| (&b.name, &b.at))?;
    for b in &file.bootenvs {
        if BootenvKind::parse(&b.kind).is_none() {
            return Err(refuse(
                &b.at,
                &["kind"],
                format!("bootenv {} kind", b.name),
                format!("`{}` is not `ipxe` or `local`", b.kind),
            ));
        }
    }
    Ok(())
}

/// The jig of a role the file defines or the database holds.
fn jig_of(file: &ClusterFile, known: &Known, role: &str) -> Option<JigKind> {
    file.roles
        .iter()
        .find(|r| r.name == role)
        .and_then(|r| JigKind::parse(&r.jig))
        .or_else(|| known.roles.iter().find(|(n, _)| n == role).map(|(_, j)| *j))
}

fn role_exists(file: &ClusterFile, known: &Known, role: &str) -> bool {
    file.roles.iter().any(|r| r.name == role) || known.roles.iter().any(|(n, _)| n == role)
}

/// `data` (a role's defaults or a binding's) has the types `jig` reads.
fn check_role_data(
    at: &At,
    path: &[&str],
    field: String,
    jig: Option<JigKind>,
    data: &Option<toml::Value>,
) -> Result<(), ClusterError> {
    let (Some(jig), Some(_)) = (jig, data) else {
        return Ok(());
    };
    check_data(jig, &to_json(data)).map_err(|bad| {
        let mut full: Vec<&str> = path.to_vec();
        full.extend(bad.path.split('.'));
        refuse(at, &full, format!("{field} {}", bad.path), bad.reason)
    })
}

fn check_roles(file: &ClusterFile, known: &Known) -> Result<(), ClusterError> {
    no_duplicates(&file.roles, "role", |r| (&r.name, &r.at))?;
    for r in &file.roles {
        for (i, required) in r.requires.iter().enumerate() {
            if !role_exists(file, known, required) {
                return Err(refuse(
                    &r.at,
                    &["requires", &i.to_string()],
                    format!("role {} requires", r.name),
                    format!("role `{required}` is defined neither in the file nor in the database"),
                ));
            }
        }
        let field = format!("role {} data", r.name);
        check_role_data(&r.at, &["data"], field, JigKind::parse(&r.jig), &r.data)?;
    }
    Ok(())
}

/// Where an address or MAC was first claimed: by which node, and where.
struct Claim<'a> {
    node: &'a str,
    /// Where, as " (line N)" or " (in the database)".
    line: String,
    stored: bool,
}

/// Nodes: no duplicate names, MACs or addresses (in the file or against
/// other stored nodes), addresses that are hosts of a declared network,
/// known bootenvs.
fn check_nodes(
    file: &ClusterFile,
    known: &Known,
    subnets: &[Subnet],
) -> Result<Vec<String>, ClusterError> {
    no_duplicates(&file.nodes, "node", |n| (&n.name, &n.at))?;
    if let Some(n) = file
        .nodes
        .iter()
        .find(|n| n.name.trim().is_empty() || n.name.parse::<i64>().is_ok())
    {
        return Err(refuse(
            &n.at,
            &["name"],
            format!("node {}", n.name),
            "a node's name must not be empty or all digits (ids are)".into(),
        ));
    }
    let mut macs: HashMap<String, Claim> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, Claim> = HashMap::new();
    for k in &known.interfaces {
        let claim = || Claim {
            node: &k.node,
            line: " (in the database)".into(),
            stored: true,
        };
        macs.insert(k.mac.clone(), claim());
        if let Some(ip) = k.ip.as_deref().and_then(|ip| ip.parse().ok()) {
            ips.insert(ip, claim());
        }
    }
    let mut warnings = Vec::new();
    for n in &file.nodes {
        if let Some(bootenv) = &n.bootenv {
            let defined = file.bootenvs.iter().any(|b| b.name == *bootenv)
                || known.bootenvs.contains(bootenv);
            if !defined {
                return Err(refuse(
                    &n.at,
                    &["bootenv"],
                    format!("node {} bootenv", n.name),
                    format!(
                        "bootenv `{bootenv}` is defined neither in the file nor in the database"
                    ),
                ));
            }
        }
        for (i, iface) in n.interfaces.iter().enumerate() {
            let index = i.to_string();
            let mac_path = ["interfaces", index.as_str(), "mac"];
            let ip_path = ["interfaces", index.as_str(), "ip"];
            let field = |f: &str| format!("node {} interfaces[{i}].{f}", n.name);
            let mac =
                normalise_mac(&iface.mac).map_err(|r| refuse(&n.at, &mac_path, field("mac"), r))?;
            let claim = Claim {
                node: &n.name,
                line: line_note(&n.at, &mac_path),
                stored: false,
            };
            if let Some(first) = macs.insert(mac.clone(), claim) {
                if first.node != n.name || !first.stored {
                    return Err(refuse(
                        &n.at,
                        &mac_path,
                        field("mac"),
                        format!(
                            "duplicate MAC {mac}: also on node {}{}",
                            first.node, first.line
                        ),
                    ));
                }
            }
            let Some(raw) = &iface.ip else { continue };
            let ip = ipv4(raw).map_err(|r| refuse(&n.at, &ip_path, field("ip"), r))?;
            let claim = Claim {
                node: &n.name,
                line: line_note(&n.at, &ip_path),
                stored: false,
            };
            if let Some(first) = ips.insert(ip, claim) {
                if first.node != n.name || !first.stored {
                    return Err(refuse(
                        &n.at,
                        &ip_path,
                        field("ip"),
                        format!(
                            "duplicate IP address {ip}: also on node {}{}",
                            first.node, first.line
                        ),
                    ));
                }
            }
            if subnets.is_empty() {
                warnings.push(format!(
                    "{}: {}node {} interfaces[{i}].ip: {ip} is not checked: no network is declared",
                    n.at.file,
                    n.at.line(&ip_path)
                        .map(|l| format!("line {l}: "))
                        .unwrap_or_default(),
                    n.name
                ));
                continue;
            }
            let Some(subnet) = subnets.iter().find(|s| s.contains(ip)) else {
                let declared: Vec<String> =
                    subnets.iter().map(|s| format!("{} {s}", s.name)).collect();
                return Err(refuse(
                    &n.at,
                    &ip_path,
                    field("ip"),
                    format!(
                        "{ip} is in no declared network ({}), so kiln's DHCP server could never answer it",
                        declared.join(", ")
                    ),
                ));
            };
            if let Some(what) = subnet.not_a_host(ip) {
                return Err(refuse(
                    &n.at,
                    &ip_path,
                    field("ip"),
                    format!("{ip} is the {what} of network {} ({subnet})", subnet.name),
                ));
            }
        }
    }
    Ok(warnings)
}

/// Deployments: no duplicate names; bindings name roles and nodes that
/// exist and carry data their role's jig can read.
fn check_deployments(file: &ClusterFile, known: &Known) -> Result<(), ClusterError> {
    no_duplicates(&file.deployments, "deployment", |d| (&d.name, &d.at))?;
    for d in &file.deployments {
        if let Some(parent) = &d.parent {
            let exists = file.deployments.iter().any(|p| p.name == *parent)
                || known.deployments.contains(parent);
            if !exists {
                return Err(refuse(
                    &d.at,
                    &["parent"],
                    format!("deployment {} parent", d.name),
                    format!(
                        "deployment `{parent}` is defined neither in the file nor in the database"
                    ),
                ));
            }
        }
        for (i, b) in d.bindings.iter().enumerate() {
            let index = i.to_string();
            let field = format!("deployment {} bindings[{i}]", d.name);
            if !role_exists(file, known, &b.role) {
                return Err(refuse(
                    &d.at,
                    &["bindings", &index, "role"],
                    format!("{field} role"),
                    format!("role `{}` not found", b.role),
                ));
            }
            for (j, node) in b.nodes.iter().enumerate() {
                let exists =
                    file.nodes.iter().any(|n| n.name == *node) || known.nodes.contains(node);
                if !exists {
                    return Err(refuse(
                        &d.at,
                        &["bindings", &index, "nodes", &j.to_string()],
                        format!("{field} nodes"),
                        format!("node `{node}` not found"),
                    ));
                }
            }
            check_role_data(
                &d.at,
                &["bindings", &index, "data"],
                format!("{field} data"),
                jig_of(file, known, &b.role),
                &b.data,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        assert!(Subnet::parse("a", "10.0.0.0/33")
            .unwrap_err()
            .contains("/33"));
        assert!(Subnet::parse("a", "10.0.0.1/24")
            .unwrap_err()
            .contains("10.0.0.0/24"));
        let a = Subnet::parse("a", "10.0.0.0/16").unwrap();
        let b = Subnet::parse("b", "10.0.200.0/24").unwrap();
        let c = Subnet::parse("c", "10.1.0.0/16").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c));
        assert_eq!(
            a.not_a_host("10.0.255.255".parse().unwrap()),
            Some("broadcast address")
        );
        assert_eq!(
            a.not_a_host("10.0.0.0".parse().unwrap()),
            Some("network address")
        );
        let p2p = Subnet::parse("p", "10.2.0.0/31").unwrap();
        assert_eq!(p2p.not_a_host("10.2.0.0".parse().unwrap()), None);
        assert!(Subnet::parse("all", "0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
