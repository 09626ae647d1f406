//! Export files for sites that run their own servers: an ISC dhcpd host
//! file, a dnsmasq hosts file, and a BIND forward zone. Files are replaced
//! atomically and only when their content changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use entity::{bootenv, interface, network, node};
use futures::future::BoxFuture;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};

use crate::jigs::{Jig, JigContext, JigResult};

/// One host line's worth of facts.
#[derive(Debug, Clone)]
pub struct HostEntry {
    pub name: String,
    pub mac: String,
    pub ip: String,
    pub local_boot: bool,
}

/// Nodes with an address, and whether their bootenv boots from disk.
pub async fn hosts(db: &DatabaseConnection) -> Result<Vec<HostEntry>, sea_orm::DbErr> {
    let nodes = node::Entity::find()
        .order_by_asc(node::Column::Id)
        .all(db)
        .await?;
    let ifaces = interface::Entity::find()
        .order_by_asc(interface::Column::Id)
        .all(db)
        .await?;
    let local: Vec<String> = bootenv::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .filter(|b| b.kind == "local")
        .map(|b| b.name)
        .collect();
    let by_id: std::collections::HashMap<i64, &node::Model> =
        nodes.iter().map(|n| (n.id, n)).collect();
    Ok(ifaces
        .into_iter()
        .filter_map(|i| {
            let n = by_id.get(&i.node_id)?;
            Some(HostEntry {
                name: n.name.clone(),
                mac: i.mac,
                ip: i.ip?,
                local_boot: local.contains(&n.bootenv),
            })
        })
        .collect())
}

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

/// A BIND forward zone for `domain` with a serial above `previous`.
pub fn forward_zone(
    domain: &str,
    ns_ip: &str,
    hosts: &[HostEntry],
    previous: Option<u64>,
) -> String {
    let today: u64 = chrono::Utc::now()
        .format("%Y%m%d00")
        .to_string()
        .parse()
        .unwrap_or(1);
    let serial = previous.map_or(today, |p| (p + 1).max(today));
    let mut out = format!(
        "$ORIGIN {domain}.\n$TTL 300\n@ IN SOA ns.{domain}. hostmaster.{domain}. ( {serial} 3600 600 86400 300 )\n@ IN NS ns.{domain}.\nns IN A {ns_ip}\n"
    );
    let suffix = format!(".{domain}");
    for h in hosts {
        if let Some(label) = h.name.strip_suffix(&suffix) {
            out.push_str(&format!("{label} IN A {}\n", h.ip));
        }
    }
    out
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

/// provisioner-dhcp-database: rewrites the exported host files.
pub struct DhcpDatabaseJig {
    pub db: DatabaseConnection,
    pub export_dir: PathBuf,
    pub boot_url: String,
    /// kiln's own DHCP server's table, reloaded so answers follow bootenvs.
    pub table: Option<Arc<super::dhcp::DhcpTable>>,
}

/// provisioner-dns-database: rewrites each network's forward zone.
pub struct DnsDatabaseJig {
    pub db: DatabaseConnection,
    pub export_dir: PathBuf,
}

fn outcome(result: Result<Vec<String>, String>) -> JigResult {
    match result {
        Ok(written) => JigResult {
            succeeded: true,
            runlog: format!(
                "wrote: {}\n",
                if written.is_empty() {
                    "nothing (unchanged)".into()
                } else {
                    written.join(", ")
                }
            ),
            wall: Some(serde_json::json!({ "written": written })),
            error: None,
        },
        Err(e) => JigResult {
            succeeded: false,
            runlog: format!("{e}\n"),
            wall: None,
            error: Some(e),
        },
    }
}

impl Jig for DhcpDatabaseJig {
    fn run(&self, _: JigContext) -> BoxFuture<'static, JigResult> {
        let db = self.db.clone();
        let dir = self.export_dir.clone();
        let boot_url = self.boot_url.clone();
        let table = self.table.clone();
        Box::pin(async move {
            let result = async {
                if let Some(table) = &table {
                    table.load(&db).await.map_err(|e| e.to_string())?;
                }
                let hosts = hosts(&db).await.map_err(|e| e.to_string())?;
                let mut written = Vec::new();
                for (file, content) in [
                    ("dhcpd-hosts.conf", isc_hosts(&hosts, &boot_url)),
                    ("dnsmasq-hosts", dnsmasq_hosts(&hosts)),
                ] {
                    if write_if_changed(&dir.join(file), &content)
                        .map_err(|e| format!("{file}: {e}"))?
                    {
                        written.push(file.to_string());
                    }
                }
                Ok(written)
            }
            .await;
            outcome(result)
        })
    }
}

impl Jig for DnsDatabaseJig {
    fn run(&self, _: JigContext) -> BoxFuture<'static, JigResult> {
        let db = self.db.clone();
        let dir = self.export_dir.clone();
        Box::pin(async move {
            let result = async {
                let hosts = hosts(&db).await.map_err(|e| e.to_string())?;
                let nets = network::Entity::find()
                    .all(&db)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut written = Vec::new();
                for net in nets.iter().filter(|n| !n.domain.is_empty()) {
                    let file = format!("db.{}", net.domain);
                    let path = dir.join(&file);
                    let ns = net.router.clone().unwrap_or_else(|| "127.0.0.1".into());
                    let body = |serial| forward_zone(&net.domain, &ns, &hosts, serial);
                    let previous = std::fs::read_to_string(&path).ok();
                    // Only a change of records earns a new serial.
                    let unchanged =
                        previous.as_deref().map(strip_serial) == Some(strip_serial(&body(None)));
                    if unchanged {
                        continue;
                    }
                    let old_serial = previous.as_deref().and_then(zone_serial);
                    if write_if_changed(&path, &body(old_serial))
                        .map_err(|e| format!("{file}: {e}"))?
                    {
                        written.push(file);
                    }
                }
                Ok(written)
            }
            .await;
            outcome(result)
        })
    }
}

fn strip_serial(zone: &str) -> String {
    zone.lines()
        .filter(|l| !l.contains(" SOA "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Both database jigs, by role name, for the orchestrator.
pub fn builtin_jigs(
    db: &DatabaseConnection,
    export_dir: &Path,
    boot_url: &str,
    table: Option<Arc<super::dhcp::DhcpTable>>,
) -> Vec<(String, Arc<dyn Jig>)> {
    vec![
        (
            crate::actors::roles::DHCP_DATABASE_ROLE.to_string(),
            Arc::new(DhcpDatabaseJig {
                db: db.clone(),
                export_dir: export_dir.to_path_buf(),
                boot_url: boot_url.to_string(),
                table,
            }) as Arc<dyn Jig>,
        ),
        (
            crate::actors::roles::DNS_DATABASE_ROLE.to_string(),
            Arc::new(DnsDatabaseJig {
                db: db.clone(),
                export_dir: export_dir.to_path_buf(),
            }) as Arc<dyn Jig>,
        ),
    ]
}
