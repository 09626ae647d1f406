//! Baseboard management controllers: how kiln powers a machine and picks
//! what it boots next, without anyone at the rack. One trait,
//! [`PowerControl`], with a driver per protocol: `ipmi` (ipmitool over
//! RMCP+), `redfish` (HTTP JSON) and `command` (an operator's program, for
//! PDUs and odd BMCs). A node names its driver and credentials in its
//! `bmc`; the password is kept sealed ([`secret`]) and only opened into a
//! [`Secret`] for the call that needs it.

pub mod command;
pub mod ipmi;
mod process;
pub mod redfish;
pub mod secret;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use command::CommandDriver;
pub use ipmi::IpmiDriver;
pub use redfish::RedfishDriver;
pub use secret::{SealError, SecretKey};

/// Which protocol reaches a node's BMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Ipmi,
    Redfish,
    Command,
    None,
}

impl DriverKind {
    /// Every kind, in the order the API documents them.
    pub const ALL: [DriverKind; 4] = [Self::Ipmi, Self::Redfish, Self::Command, Self::None];

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipmi => "ipmi",
            Self::Redfish => "redfish",
            Self::Command => "command",
            Self::None => "none",
        }
    }

    /// The kind spelled `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A password opened for one call. It prints as `***` in `Debug` and
/// `Display` and is never serialized, so it cannot leak through a log
/// line, an error or a response by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The password itself, for the one place that hands it to the BMC.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything a driver needs to reach one node's BMC.
#[derive(Clone, Debug)]
pub struct BmcTarget {
    /// The node's name, for messages and the command driver.
    pub node: String,
    /// The node's interface MACs (the command driver passes the first).
    pub macs: Vec<String>,
    pub driver: DriverKind,
    /// `host[:port]` for IPMI, a base URL for Redfish.
    pub address: String,
    pub username: String,
    pub password: Secret,
    /// The Redfish system id; `None`: the only member of `/Systems`.
    pub system: Option<String>,
    pub verify_tls: bool,
}

/// What a BMC says of the machine's power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
    Unknown,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::On, Self::Off, Self::Unknown]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What kiln asks a BMC to do with the machine's power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    On,
    Off,
    /// An orderly shutdown through the operating system (ACPI).
    SoftOff,
    /// Off then on (a reset where the BMC has no cycle).
    Cycle,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::SoftOff => "soft_off",
            Self::Cycle => "cycle",
        }
    }
}

/// What the machine boots the next time it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NextBoot {
    /// The network, once: the boot after that is the firmware's own order.
    Pxe,
    /// The local disk, once.
    Disk,
}

impl NextBoot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pxe => "pxe",
            Self::Disk => "disk",
        }
    }
}

/// Why a BMC call failed. Each message is what the BMC (or the network)
/// said, never the credentials that were sent.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BmcError {
    #[error("BMC {address} cannot be reached: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("BMC {address} refused: {reason}")]
    Refused { address: String, reason: String },
    #[error("BMC {address} did not answer within {seconds}s")]
    Timeout { address: String, seconds: u64 },
    #[error("the {driver} driver cannot {what}")]
    Unsupported { driver: &'static str, what: String },
    #[error("node {node} has no BMC configured")]
    NotConfigured { node: String },
    /// The node's BMC address cannot be used (checked before any call, so
    /// nothing malformed reaches ipmitool's command line or a URL).
    #[error("BMC address {address:?} is not valid: {reason}")]
    BadAddress { address: String, reason: String },
    /// The BMC (or the driver's program) answered, with an error.
    #[error("BMC {address} failed: {reason}")]
    Failed { address: String, reason: String },
}

/// One BMC protocol. Every call is bounded in time by the driver, so a
/// dead BMC costs a timeout, never a hang.
pub trait PowerControl: Send + Sync {
    /// The machine's power state as the BMC reports it now.
    fn status(&self, target: &BmcTarget) -> BoxFuture<'static, Result<PowerState, BmcError>>;

    /// Performs `action`; resolves once the BMC accepted it.
    fn act(
        &self,
        target: &BmcTarget,
        action: PowerAction,
    ) -> BoxFuture<'static, Result<(), BmcError>>;

    /// Makes the next boot (only) go to `next`.
    fn set_next_boot(
        &self,
        target: &BmcTarget,
        next: NextBoot,
    ) -> BoxFuture<'static, Result<(), BmcError>>;

    /// The MACs of the machine's NICs, where the BMC knows them (Redfish's
    /// EthernetInterfaces): what matches a node defined by its BMC to the
    /// machine that then boots.
    fn macs(&self, target: &BmcTarget) -> BoxFuture<'static, Result<Vec<String>, BmcError>> {
        let driver = target.driver.as_str();
        Box::pin(async move {
            Err(BmcError::Unsupported {
                driver,
                what: "list the machine's NICs".into(),
            })
        })
    }
}

/// What the drivers are built from: the main line fills it from its
/// settings (this module reads none itself).
#[derive(Clone, Debug)]
pub struct DriverSettings {
    /// The bound on every BMC call (each ipmitool or command run, each
    /// Redfish request).
    pub timeout: Duration,
    /// The ipmitool program: a path, or a name looked up in `PATH`.
    pub ipmitool: PathBuf,
    /// The operator's power program for the `command` driver, if any.
    pub command: Option<PathBuf>,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            ipmitool: PathBuf::from("ipmitool"),
            command: None,
        }
    }
}

/// One driver per protocol, built once and shared by everything that
/// powers machines, so each node only names its kind.
pub struct Drivers {
    ipmi: IpmiDriver,
    redfish: RedfishDriver,
    command: Option<CommandDriver>,
}

impl Drivers {
    pub fn new(settings: &DriverSettings) -> Self {
        Self {
            ipmi: IpmiDriver::new(settings.ipmitool.clone(), settings.timeout),
            redfish: RedfishDriver::new(settings.timeout),
            command: settings
                .command
                .clone()
                .map(|program| CommandDriver::new(program, settings.timeout)),
        }
    }

    /// The driver for `kind`; `None` for `none`, and for `command` when no
    /// power program is configured.
    pub fn get(&self, kind: DriverKind) -> Option<&dyn PowerControl> {
        match kind {
            DriverKind::Ipmi => Some(&self.ipmi),
            DriverKind::Redfish => Some(&self.redfish),
            DriverKind::Command => self.command.as_ref().map(|c| c as &dyn PowerControl),
            DriverKind::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_driver_and_none_has_none() {
        let mut settings = DriverSettings::default();
        let drivers = Drivers::new(&settings);
        assert!(drivers.get(DriverKind::Ipmi).is_some());
        assert!(drivers.get(DriverKind::Redfish).is_some());
        assert!(drivers.get(DriverKind::Command).is_none());
        assert!(drivers.get(DriverKind::None).is_none());
        settings.command = Some(PathBuf::from("/usr/local/bin/pdu-power"));
        assert!(Drivers::new(&settings).get(DriverKind::Command).is_some());
    }
}
