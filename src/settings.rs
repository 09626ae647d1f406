//! Typed settings, layered: `config/default.toml` (built into the binary),
//! then `--config FILE`, then `KILN_SECTION__KEY` environment variables.
//!
//! Unknown keys and wrong types are refused with the key and the source
//! that set it, because a typo in a provisioning system's config is worse
//! than a refusal to start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Value, ValueKind};
use serde::{Deserialize, Serialize};

const DEFAULTS: &str = include_str!("../config/default.toml");
const DEFAULTS_ORIGIN: &str = "config/default.toml";

/// Everything kiln reads from configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub scheduler: SchedulerSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub dhcp: DhcpSettings,
    pub tftp: TftpSettings,
    pub provisioner: ProvisionerSettings,
    pub sim: SimSettings,
    pub power: PowerSettings,
    pub bmc: BmcSettings,
    pub jigs: JigSettings,
    pub cluster: ClusterSettings,
    pub inventory: InventorySettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySettings {
    /// How long the inventory role waits, from the node's return to alive,
    /// for the machine's report before its noderole goes to error.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Apply kiln's built-in roles (`config/roles.toml`) at every start.
    pub builtin_roles: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JigSettings {
    /// Where relative role script paths are resolved.
    pub scripts_dir: PathBuf,
    pub script_timeout_ms: u64,
    /// Actor messages kept by the trace recorder.
    pub trace_capacity: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub max_concurrent_runs: usize,
}

/// Log output shape.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub admin_token: String,
    /// Boot routes that carry a node token answer only the node's own
    /// address when kiln knows it (fixed, or leased by kiln's DHCP server).
    pub boot_address_check: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpSettings {
    pub enabled: bool,
    pub interface: String,
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TftpSettings {
    pub enabled: bool,
    pub address: String,
    pub port: u16,
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionerSettings {
    pub export_dir: PathBuf,
    pub files_dir: PathBuf,
    pub api_url: String,
    pub files_url: String,
    /// How long a node may take from its scheduled reboot until it is alive
    /// again before its os-install noderole goes to error (0: wait forever).
    pub install_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSettings {
    /// Program that power-cycles a machine (IPMI, a PDU, a VM monitor); empty:
    /// nothing does, and machines reboot by themselves or by the simulator.
    pub command: String,
}

/// How kiln talks to nodes' BMCs.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BmcSettings {
    /// The key BMC passwords are sealed with (16 characters or more);
    /// empty: read `secret_key_file`; both empty: kiln keeps no passwords.
    pub secret_key: String,
    pub secret_key_file: String,
    /// The longest one BMC call may take.
    pub timeout_ms: u64,
    /// The ipmitool program of the `ipmi` driver.
    pub ipmitool: PathBuf,
    /// How often every BMC's power state is read (0: never in the background).
    pub poll_interval_ms: u64,
    /// How many BMCs one poll asks at once.
    pub poll_concurrency: usize,
}

/// The key never prints, not even in a settings dump.
impl std::fmt::Debug for BmcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcSettings")
            .field(
                "secret_key",
                &if self.secret_key.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("secret_key_file", &self.secret_key_file)
            .field("timeout_ms", &self.timeout_ms)
            .field("ipmitool", &self.ipmitool)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("poll_concurrency", &self.poll_concurrency)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// Play a simulated machine for every node whose reboot is scheduled.
    pub enabled: bool,
    pub reboot_delay_ms: u64,
    pub install_ms: u64,
}

/// Why settings could not be loaded; each names the key and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("unknown settings key `{key}` (set in {origin})")]
    UnknownKey { key: String, origin: String },
    #[error("settings key `{key}` (set in {origin}): {reason}")]
    Invalid {
        key: String,
        origin: String,
        reason: String,
    },
    #[error("settings: {0}")]
    Other(String),
}

impl Settings {
    /// `serve --simulate`: simulated machines need kiln's DHCP server; on
    /// loopback it needs no privileges when no port was chosen.
    ///
    /// Simulated machines call from loopback, not from the addresses their
    /// nodes have, so the boot routes' address check is off.
    pub fn simulate(&mut self) {
        self.sim.enabled = true;
        self.auth.boot_address_check = false;
        if !self.dhcp.enabled {
            self.dhcp.enabled = true;
            self.dhcp.address = "127.0.0.1".into();
            self.dhcp.port = 0;
        }
    }

    /// Loads the layered settings from the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(config_file, std::env::vars())
    }

    /// Loads the layered settings with an explicit environment, so tests
    /// need not mutate the process's.
    pub fn load_with_env(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml).format(FileFormat::Toml));
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(SettingsError::Read {
                    path: path.display().to_string(),
                    reason: "no such file".into(),
                });
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let env_map = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("KILN_") && k.contains("__"))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("KILN")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env_map)),
        );
        let merged = builder
            .build()
            .map_err(|e| from_config_error(e, config_file))?;
        reject_unknown_keys(&merged, config_file)?;
        merged
            .try_deserialize::<Settings>()
            .map_err(|e| from_config_error(e, config_file))
    }

    /// The defaults alone, as shipped.
    pub fn defaults() -> Self {
        Self::load_with_env(None, std::iter::empty()).expect("built-in defaults are valid")
    }
}

/// Every leaf key path the typed settings know, from the defaults' shape.
fn known_keys() -> BTreeSet<String> {
    let defaults: toml::Value = toml::from_str(DEFAULTS).expect("built-in defaults parse");
    let mut keys = BTreeSet::new();
    collect_toml_keys("", &defaults, &mut keys);
    keys
}

fn collect_toml_keys(prefix: &str, value: &toml::Value, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_toml_keys(&path, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

fn reject_unknown_keys(merged: &Config, config_file: Option<&Path>) -> Result<(), SettingsError> {
    let known = known_keys();
    let mut leaves = Vec::new();
    collect_config_leaves("", &merged.cache, &mut leaves);
    for (key, origin) in leaves {
        if !known.contains(&key) {
            return Err(SettingsError::UnknownKey {
                key,
                origin: describe_origin(origin.as_deref(), config_file),
            });
        }
    }
    Ok(())
}

fn collect_config_leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Option<String>)>) {
    match &value.kind {
        ValueKind::Table(table) => {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_config_leaves(&path, v, out);
            }
        }
        _ => out.push((prefix.to_string(), value.origin().map(str::to_string))),
    }
}

fn describe_origin(origin: Option<&str>, config_file: Option<&Path>) -> String {
    match origin {
        Some(o) if o.contains("environment") => "the environment (KILN_SECTION__KEY)".into(),
        Some(o) => o.to_string(),
        None => match config_file {
            Some(p) => format!("{} or {DEFAULTS_ORIGIN}", p.display()),
            None => DEFAULTS_ORIGIN.into(),
        },
    }
}

fn from_config_error(err: config::ConfigError, config_file: Option<&Path>) -> SettingsError {
    match err {
        config::ConfigError::Type {
            origin,
            unexpected,
            expected,
            key,
        } => SettingsError::Invalid {
            key: key.unwrap_or_else(|| "?".into()),
            origin: describe_origin(origin.as_deref(), config_file),
            reason: format!("found {unexpected}, expected {expected}"),
        },
        config::ConfigError::FileParse { uri, cause } => SettingsError::Read {
            path: uri.unwrap_or_else(|| DEFAULTS_ORIGIN.into()),
            reason: cause.to_string(),
        },
        config::ConfigError::At { error, origin, key } => SettingsError::Invalid {
            key: key.unwrap_or_else(|| "?".into()),
            origin: describe_origin(origin.as_deref(), config_file),
            reason: error.to_string(),
        },
        other => SettingsError::Other(other.to_string()),
    }
}
