//! The cluster file's shape (DESIGN section 6), parsed strictly.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::positions::Pos;
use super::ClusterError;

/// Where a definition was written: its file and the lines of its fields,
/// so a refusal names both even after the built-in roles were merged in.
#[derive(Debug, Clone, Default)]
pub struct At {
    pub file: String,
    pub pos: Pos,
}

impl At {
    /// The line of the field at `path` (e.g. `["interfaces", "0", "ip"]`),
    /// or of the nearest enclosing one the parser gave.
    pub fn line(&self, path: &[&str]) -> Option<usize> {
        self.pos.line_of(path)
    }
}

/// A whole cluster file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    #[serde(default, rename = "network")]
    pub networks: Vec<NetworkDef>,
    #[serde(default, rename = "role")]
    pub roles: Vec<RoleDef>,
    #[serde(default, rename = "bootenv")]
    pub bootenvs: Vec<BootenvDef>,
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeDef>,
    #[serde(default, rename = "deployment")]
    pub deployments: Vec<DeploymentDef>,
    /// Where the file was read from (relative script paths resolve here).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    /// Where the definition is in its file (for error messages).
    #[serde(skip)]
    pub at: At,
    pub name: String,
    pub subnet: String,
    pub router: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub domain: String,
    pub pool: Option<[String; 2]>,
    #[serde(default = "default_lease")]
    pub lease_secs: i32,
}

fn default_lease() -> i32 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Where the definition is in its file (for error messages).
    #[serde(skip)]
    pub at: At,
    pub name: String,
    pub jig: String,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub data: Option<toml::Value>,
    #[serde(default)]
    pub scripts: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootenvDef {
    /// Where the definition is in its file (for error messages).
    #[serde(skip)]
    pub at: At,
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub initrd: String,
    #[serde(default)]
    pub append: String,
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub description: String,
}

fn default_kind() -> String {
    "ipxe".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Where the definition is in its file (for error messages).
    #[serde(skip)]
    pub at: At,
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    pub alive: Option<bool>,
    pub available: Option<bool>,
    pub bootenv: Option<String>,
    pub target_os: Option<String>,
    /// Apply `alive` and `bootenv` to a node that exists already: without
    /// it they are taken only when the node is created, so applying a file
    /// never undoes what the machine reported (a node down mid-install).
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub interfaces: Vec<InterfaceDef>,
    /// Its BMC, as the API's `bmc` (the password sealed when applied).
    pub bmc: Option<BmcDef>,
}

/// A node's BMC in a cluster file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcDef {
    pub driver: crate::bmc::DriverKind,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub username: String,
    pub password: Option<String>,
    pub system: Option<String>,
    #[serde(default = "yes")]
    pub verify_tls: bool,
}

fn yes() -> bool {
    true
}

/// The password never prints.
impl std::fmt::Debug for BmcDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcDef")
            .field("driver", &self.driver)
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password_set", &self.password.is_some())
            .field("system", &self.system)
            .field("verify_tls", &self.verify_tls)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceDef {
    pub mac: String,
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentDef {
    /// Where the definition is in its file (for error messages).
    #[serde(skip)]
    pub at: At,
    pub name: String,
    pub parent: Option<String>,
    #[serde(default)]
    pub commit: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingDef {
    pub role: String,
    pub nodes: Vec<String>,
    pub data: Option<toml::Value>,
}

/// Reads and parses a cluster file; errors carry the file and line.
pub fn load(path: &Path) -> Result<ClusterFile, ClusterError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ClusterError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    parse(&text, path)
}

/// Parses cluster file text read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<ClusterFile, ClusterError> {
    let mut parsed: ClusterFile = toml::from_str(text).map_err(|e| ClusterError::Parse {
        file: path.display().to_string(),
        message: one_line(&e, text),
    })?;
    parsed.path = path.to_path_buf();
    locate(&mut parsed, text);
    Ok(parsed)
}

/// Gives each definition its place in the file.
fn locate(parsed: &mut ClusterFile, text: &str) {
    let file = parsed.path.display().to_string();
    let tree = Pos::parse(text);
    let at = |kind: &str, i: usize| At {
        file: file.clone(),
        pos: tree.item(kind, i),
    };
    for (i, d) in parsed.networks.iter_mut().enumerate() {
        d.at = at("network", i);
    }
    for (i, d) in parsed.roles.iter_mut().enumerate() {
        d.at = at("role", i);
    }
    for (i, d) in parsed.bootenvs.iter_mut().enumerate() {
        d.at = at("bootenv", i);
    }
    for (i, d) in parsed.nodes.iter_mut().enumerate() {
        d.at = at("node", i);
    }
    for (i, d) in parsed.deployments.iter_mut().enumerate() {
        d.at = at("deployment", i);
    }
}

/// toml's message on one line, with the line number.
fn one_line(err: &toml::de::Error, text: &str) -> String {
    let line = err
        .span()
        .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    let message = err.message().replace('\n', " ");
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

/// TOML data as JSON (noderole and role data are JSON in the database).
pub fn to_json(value: &Option<toml::Value>) -> serde_json::Value {
    match value {
        Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
        None => serde_json::json!({}),
    }
}
