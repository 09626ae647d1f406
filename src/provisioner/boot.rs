//! What a node network-boots: the iPXE script for its bootenv, and the
//! answer file its installer fetches. Machines kiln does not know get the
//! discovery script.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use entity::{bootenv, node};

use super::template::{render_with, TemplateError};
use crate::domain::BootenvKind;
use crate::settings::ProvisionerSettings;

/// Where nodes reach kiln.
#[derive(Debug, Clone)]
pub struct BootUrls {
    /// Base of the admin API, e.g. `http://10.99.0.1:3000`.
    pub api_url: String,
    /// Base under which `provisioner.files_dir` is served.
    pub files_url: String,
}

impl BootUrls {
    /// `provisioner.api_url`, else `http://` and the address HTTP is bound
    /// to (the port really bound: tests bind port 0); `provisioner.files_url`,
    /// else the API's `/boot/files`. Neither ends in `/`.
    pub fn new(settings: &ProvisionerSettings, bound: SocketAddr) -> Self {
        let api_url = if settings.api_url.is_empty() {
            format!("http://{bound}")
        } else {
            settings.api_url.trim_end_matches('/').to_string()
        };
        let files_url = if settings.files_url.is_empty() {
            format!("{api_url}/boot/files")
        } else {
            settings.files_url.trim_end_matches('/').to_string()
        };
        Self { api_url, files_url }
    }
}

/// The variables every template may use.
pub fn variables(
    urls: &BootUrls,
    node: Option<&node::Model>,
    token: Option<&str>,
    mac: &str,
    ip: Option<&str>,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (
            "node_name",
            node.map(|n| n.name.clone()).unwrap_or_default(),
        ),
        ("node_token", token.unwrap_or_default().to_string()),
        ("mac", mac.to_string()),
        ("ip", ip.unwrap_or_default().to_string()),
        ("api_url", urls.api_url.clone()),
        ("files_url", urls.files_url.clone()),
        ("answer_url", format!("{}/boot/answers/{mac}", urls.api_url)),
        (
            "mode",
            match node {
                None => "discovery".to_string(),
                Some(n) if n.bootenv == "sledgehammer" => "discovery".to_string(),
                Some(_) => "install".to_string(),
            },
        ),
    ])
}

/// What templates reach besides the flat variables: `interfaces` (each
/// with `mac`, `ip`, `hostname`, for loops), and `inventory`, the node's
/// last hardware report, when it made one.
pub fn tree(
    inventory: Option<&entity::node_inventory::Model>,
    interfaces: &[entity::interface::Model],
) -> serde_json::Value {
    let interfaces: Vec<serde_json::Value> = interfaces
        .iter()
        .map(|i| serde_json::json!({"mac": i.mac, "ip": i.ip, "hostname": i.hostname}))
        .collect();
    let mut tree = serde_json::json!({ "interfaces": interfaces });
    if let Some(row) = inventory {
        tree["inventory"] = row.document.clone();
    }
    tree
}

/// The iPXE script: `exit` (next boot device) for a local bootenv, else
/// kernel and initrd with the bootenv's rendered arguments.
pub fn ipxe_script(
    bootenv: &bootenv::Model,
    vars: &BTreeMap<&'static str, String>,
    tree: &serde_json::Value,
) -> Result<String, TemplateError> {
    if bootenv.kind == BootenvKind::Local {
        return Ok("#!ipxe\necho kiln: booting from local disk\nexit\n".to_string());
    }
    let files = &vars["files_url"];
    let append = render_with(&bootenv.append, vars, tree)?;
    // UEFI kernels load their initrd by name from iPXE's image list.
    let initrd_name = bootenv.initrd.rsplit('/').next().unwrap_or_default();
    Ok(format!(
        "#!ipxe\necho kiln: {} boots {}\nkernel {files}/{} initrd={initrd_name} {append}\ninitrd {files}/{}\nboot\n",
        vars["node_name"], bootenv.name, bootenv.kernel, bootenv.initrd
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisioner(api_url: &str, files_url: &str) -> ProvisionerSettings {
        ProvisionerSettings {
            export_dir: "export".into(),
            files_dir: "files".into(),
            api_url: api_url.into(),
            files_url: files_url.into(),
            install_timeout_ms: 0,
        }
    }

    #[test]
    fn urls_default_to_the_bound_address() {
        let bound: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        let urls = BootUrls::new(&provisioner("", ""), bound);
        assert_eq!(urls.api_url, "http://127.0.0.1:41234");
        assert_eq!(urls.files_url, "http://127.0.0.1:41234/boot/files");
    }

    #[test]
    fn configured_urls_lose_their_trailing_slash() {
        let bound: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let urls = BootUrls::new(&provisioner("http://10.99.0.1:3000/", ""), bound);
        assert_eq!(urls.api_url, "http://10.99.0.1:3000");
        assert_eq!(urls.files_url, "http://10.99.0.1:3000/boot/files");
        let urls = BootUrls::new(
            &provisioner("http://10.99.0.1:3000", "http://mirror.lab/kiln/"),
            bound,
        );
        assert_eq!(urls.files_url, "http://mirror.lab/kiln");
    }
}
