//! Export files for sites that run their own servers: an ISC dhcpd host
//! file, a dnsmasq hosts file, and a BIND forward zone. Files are replaced
//! atomically and only when their content changed.

use std::path::Path;

pub use crate::db::hosts::HostEntry;

/// `host` declarations for ISC dhcpd: iPXE clients get kiln's script, others
/// the iPXE binary, except nodes that boot from disk.
pub fn isc_hosts(hosts: &[HostEntry], boot_url: &str) -> String {
    let mut out = String::from("# Written by kiln: one host per node interface.\n");
    for h in hosts {
        let label = h.name.replace('.', "-");
        out.push_str(&format!(
            "host {label}-{} {{\n  hardware ethernet {};\n  fixed-address {};\n  option host-name \"{}\";\n",
            h.mac.replace(':', ""),
            h.mac,
            h.ip,
            h.name
        ));
        if !h.local_boot {
            out.push_str(&format!(
                "  if exists user-class and option user-class = \"iPXE\" {{\n    filename \"{boot_url}/boot/{}.ipxe\";\n  }} else {{\n    filename \"undionly.kpxe\";\n  }}\n",
                h.mac
            ));
        }
        out.push_str("}\n");
    }
    out
}

/// `dhcp-host` lines for dnsmasq's `--dhcp-hostsfile`.
pub fn dnsmasq_hosts(hosts: &[HostEntry]) -> String {
    hosts
        .iter()
        .map(|h| {
            format!(
                "{},{},{}\n",
                h.mac,
                h.ip,
                h.name.split('.').next().unwrap_or(&h.name)
            )
        })
        .collect()
}

/// A serial above `previous`, and at least today's `YYYYMMDD00`.
fn next_serial(previous: Option<u64>) -> u64 {
    let today: u64 = chrono::Utc::now()
        .format("%Y%m%d00")
        .to_string()
        .parse()
        .unwrap_or(1);
    previous.map_or(today, |p| (p + 1).max(today))
}

/// The SOA and NS records every zone starts with.
fn zone_head(origin: &str, domain: &str, serial: u64) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.{domain}. hostmaster.{domain}. ( {serial} 3600 600 86400 300 )\n@ IN NS ns.{domain}.\n"
    )
}

/// A BIND forward zone for `domain` with a serial above `previous`.
pub fn forward_zone(
    domain: &str,
    ns_ip: &str,
    hosts: &[HostEntry],
    previous: Option<u64>,
) -> String {
    let mut out = zone_head(domain, domain, next_serial(previous));
    out.push_str(&format!("ns IN A {ns_ip}\n"));
    let suffix = format!(".{domain}");
    for h in hosts {
        if let Some(label) = h.name.strip_suffix(&suffix) {
            out.push_str(&format!("{label} IN A {}\n", h.ip));
        }
    }
    out
}

/// The reverse zone (`in-addr.arpa`) of a subnet, at an octet boundary at
/// or above its prefix: `10.99.0.0/24` is `0.99.10.in-addr.arpa`.
pub fn reverse_origin(subnet: &str) -> Option<(String, usize)> {
    let (addr, prefix) = subnet.split_once('/')?;
    let octets: Vec<&str> = addr.split('.').collect();
    let prefix: usize = prefix.parse().ok()?;
    let kept = (prefix / 8).clamp(1, 3);
    if octets.len() != 4 {
        return None;
    }
    let mut parts: Vec<&str> = octets[..kept].to_vec();
    parts.reverse();
    Some((format!("{}.in-addr.arpa", parts.join(".")), kept))
}

/// A BIND reverse zone with PTR records for the hosts inside `subnet`.
pub fn reverse_zone(
    subnet: &str,
    domain: &str,
    hosts: &[HostEntry],
    previous: Option<u64>,
) -> Option<String> {
    let (origin, kept) = reverse_origin(subnet)?;
    let prefix: Vec<&str> = subnet.split('/').next()?.split('.').take(kept).collect();
    let mut out = zone_head(&origin, domain, next_serial(previous));
    for h in hosts {
        let octets: Vec<&str> = h.ip.split('.').collect();
        if octets.len() == 4 && octets[..kept] == prefix[..] {
            let mut rest: Vec<&str> = octets[kept..].to_vec();
            rest.reverse();
            out.push_str(&format!("{} IN PTR {}.\n", rest.join("."), h.name));
        }
    }
    Some(out)
}

/// The serial of an existing zone file, if any.
pub fn zone_serial(text: &str) -> Option<u64> {
    let after = text.split("SOA").nth(1)?;
    let open = after.find('(')?;
    after[open + 1..].split_whitespace().next()?.parse().ok()
}

/// Writes `content` to `path` atomically; false when it was unchanged.
pub fn write_if_changed(path: &Path, content: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(content) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, content.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(true)
}

/// Writes a zone when its records changed, with a serial above the file's.
pub fn write_zone(
    path: &Path,
    render: impl Fn(Option<u64>) -> Option<String>,
) -> Result<bool, String> {
    let previous = std::fs::read_to_string(path).ok();
    let Some(fresh) = render(None) else {
        return Ok(false);
    };
    // Only a change of records earns a new serial.
    if previous.as_deref().map(strip_serial) == Some(strip_serial(&fresh)) {
        return Ok(false);
    }
    let old_serial = previous.as_deref().and_then(zone_serial);
    let body = render(old_serial).unwrap_or(fresh);
    write_if_changed(path, &body).map_err(|e| format!("{}: {e}", path.display()))
}

fn strip_serial(zone: &str) -> String {
    zone.lines()
        .filter(|l| !l.contains(" SOA "))
        .collect::<Vec<_>>()
        .join("\n")
}
