//! The `ipmi` driver: Debian's `ipmitool` over RMCP+ (`-I lanplus`), one
//! process per call. The password reaches ipmitool through the
//! `IPMI_PASSWORD` environment variable (`-E`), never its command line, so
//! it is in no `ps` listing and in no error. ipmitool's own retries are
//! sized from the driver's timeout so a dead BMC is reported by ipmitool
//! before the timeout kills it.
//!
//! Cipher suite 3 (RAKP-HMAC-SHA1, AES-128) is asked for explicitly: every
//! RMCP+ BMC has it, and without `-C` ipmitool first queries the suites,
//! which some BMCs (OpenIPMI's `ipmi_sim` among them) never answer, costing
//! seconds per call.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::Command;

use super::process::{self, RunFailure};
use super::{BmcError, BmcTarget, NextBoot, PowerAction, PowerControl, PowerState};

/// The RMCP+ port a BMC listens on when its address names none.
pub const DEFAULT_PORT: u16 = 623;

/// The RMCP+ cipher suite kiln asks for (see the module's comment).
const CIPHER_SUITE: &str = "3";

/// Power and boot device through `ipmitool -I lanplus`.
#[derive(Clone, Debug)]
pub struct IpmiDriver {
    ipmitool: PathBuf,
    timeout: Duration,
    efiboot: bool,
}

impl IpmiDriver {
    /// A driver running `ipmitool` (a path or a name looked up in `PATH`),
    /// each call bounded by `timeout`. The next boot is set for UEFI
    /// firmware (`options=efiboot`); see [`IpmiDriver::with_efiboot`].
    pub fn new(ipmitool: PathBuf, timeout: Duration) -> Self {
        Self {
            ipmitool,
            timeout,
            efiboot: true,
        }
    }

    /// Whether the next-boot flag asks for an EFI boot (`true`, the
    /// default: most servers boot UEFI, and without the flag many BMCs
    /// switch such a machine to a legacy BIOS boot) or a legacy one.
    pub fn with_efiboot(mut self, efiboot: bool) -> Self {
        self.efiboot = efiboot;
        self
    }

    /// Runs `ipmitool <session flags> <args>` against `target`'s BMC and
    /// returns its standard output.
    fn call(
        &self,
        target: &BmcTarget,
        args: Vec<&'static str>,
    ) -> BoxFuture<'static, Result<String, BmcError>> {
        let this = self.clone();
        let target = target.clone();
        Box::pin(async move { this.run(&target, &args).await })
    }

    async fn run(&self, target: &BmcTarget, args: &[&str]) -> Result<String, BmcError> {
        let (host, port) = parse_address(&target.address)?;
        let (retries, per_try) = session_flags(self.timeout);
        let mut command = Command::new(&self.ipmitool);
        command
            .args(["-I", "lanplus", "-H", &host, "-p", &port.to_string()])
            .args(["-U", &target.username, "-C", CIPHER_SUITE])
            .args(["-R", &retries.to_string(), "-N", &per_try.to_string()])
            // One -v: ipmitool then says why a session failed (a refused
            // HMAC, no answer), which the error classification reads.
            .arg("-v")
            .env_remove("IPMI_PASSWORD");
        if !target.password.is_empty() {
            command
                .arg("-E")
                .env("IPMI_PASSWORD", target.password.expose());
        }
        command.args(args);
        let address = target.address.clone();
        let finished =
            process::run(command, self.timeout)
                .await
                .map_err(|failure| match failure {
                    RunFailure::TimedOut => BmcError::Timeout {
                        address: address.clone(),
                        seconds: self.timeout.as_secs().max(1),
                    },
                    RunFailure::Spawn(e) => BmcError::Failed {
                        address: address.clone(),
                        reason: format!("cannot run {}: {e}", self.ipmitool.display()),
                    },
                })?;
        if finished.status.success() {
            Ok(finished.stdout)
        } else {
            Err(classify_failure(
                &address,
                &process::summarise(&finished.stderr, &target.password),
            ))
        }
    }
}

impl PowerControl for IpmiDriver {
    fn status(&self, target: &BmcTarget) -> BoxFuture<'static, Result<PowerState, BmcError>> {
        let call = self.call(target, vec!["chassis", "power", "status"]);
        let address = target.address.clone();
        Box::pin(async move {
            let stdout = call.await?;
            parse_status(&stdout).ok_or_else(|| BmcError::Failed {
                address,
                reason: format!(
                    "unexpected power status {:?}",
                    process::summarise(&stdout, &Default::default())
                ),
            })
        })
    }

    fn act(
        &self,
        target: &BmcTarget,
        action: PowerAction,
    ) -> BoxFuture<'static, Result<(), BmcError>> {
        let this = self.clone();
        let target = target.clone();
        Box::pin(async move {
            let control = match action {
                PowerAction::On => "on",
                PowerAction::Off => "off",
                PowerAction::SoftOff => "soft",
                // A cycle of a machine that is off is, by the IPMI spec,
                // the BMC's choice (ipmi_sim powers it on, some BMCs refuse
                // it): kiln asks for "on" then, so a cycle always ends on.
                PowerAction::Cycle => match this.status(&target).await? {
                    PowerState::Off => "on",
                    PowerState::On | PowerState::Unknown => "cycle",
                },
            };
            this.call(&target, vec!["chassis", "power", control])
                .await
                .map(drop)
        })
    }

    fn set_next_boot(
        &self,
        target: &BmcTarget,
        next: NextBoot,
    ) -> BoxFuture<'static, Result<(), BmcError>> {
        let device = match next {
            NextBoot::Pxe => "pxe",
            NextBoot::Disk => "disk",
        };
        // Without `options=persistent` the flag holds for the next boot
        // only, which is what kiln wants.
        let mut args = vec!["chassis", "bootdev", device];
        if self.efiboot {
            args.push("options=efiboot");
        }
        let call = self.call(target, args);
        Box::pin(async move { call.await.map(drop) })
    }
}

/// `host[:port]`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address as the
/// host and port ipmitool is given. Refuses what ipmitool could read as an
/// option (a leading `-`) and anything that is not a host name or address.
pub fn parse_address(address: &str) -> Result<(String, u16), BmcError> {
    let bad = |reason: &str| BmcError::BadAddress {
        // `user:password@host` is no IPMI address; the error does not
        // repeat what may be a password.
        address: match address.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => address.to_string(),
        },
        reason: reason.to_string(),
    };
    let trimmed = address.trim();
    if trimmed.is_empty() {
        return Err(bad(
            "it is empty: set bmc.address, or boot the machine into discovery, which reports it",
        ));
    }
    let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address opened with [ is not closed with ]"))?;
        if host
            .split('%')
            .next()
            .unwrap_or("")
            .parse::<Ipv6Addr>()
            .is_err()
        {
            return Err(bad("the part in brackets is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("only :port may follow ]"))?,
            ),
        };
        (host, port)
    } else if trimmed.matches(':').count() > 1 {
        if trimmed
            .split('%')
            .next()
            .unwrap_or("")
            .parse::<Ipv6Addr>()
            .is_err()
        {
            return Err(bad("not an IPv6 address (write [address]:port for a port)"));
        }
        (trimmed, None)
    } else {
        match trimmed.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (trimmed, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(bad("the port is not a number from 1 to 65535")),
        },
    };
    let is_host_char = |c: char| c.is_ascii_alphanumeric() || ".-_:%".contains(c);
    if host.is_empty() || host.starts_with('-') || !host.chars().all(is_host_char) {
        return Err(bad("the host is not a host name or an IP address"));
    }
    Ok((host.to_string(), port))
}

/// The state in `ipmitool chassis power status`'s output ("Chassis Power
/// is on").
pub fn parse_status(stdout: &str) -> Option<PowerState> {
    stdout.lines().find_map(|line| {
        let state = line.trim().strip_prefix("Chassis Power is ")?;
        match state.trim() {
            "on" => Some(PowerState::On),
            "off" => Some(PowerState::Off),
            _ => None,
        }
    })
}

/// ipmitool's `-R` (tries) and `-N` (seconds of the first try) for a call
/// bounded by `timeout`. Each try waits a second longer than the one
/// before, and an unanswered session start is tried twice over (IPMI 2.0,
/// then 1.5), so a dead BMC costs `2 × Σ (N + i)`, kept under about 60 %
/// of the timeout so ipmitool says so before it is killed.
pub fn session_flags(timeout: Duration) -> (u32, u64) {
    let budget = timeout.as_secs_f64() * 0.6 / 2.0;
    let retries: u32 = if timeout >= Duration::from_secs(10) {
        2
    } else {
        1
    };
    let ramp = f64::from(retries * (retries - 1) / 2);
    let per_try = ((budget - ramp) / f64::from(retries)).floor().max(1.0);
    (retries, per_try as u64)
}

/// The error for a failed ipmitool call, from its (summarised) stderr.
pub fn classify_failure(address: &str, stderr: &str) -> BmcError {
    let lower = stderr.to_ascii_lowercase();
    let refused = [
        "rakp 2 hmac is invalid",
        "rakp 4 message has invalid",
        "unauthorized name",
        "invalid user name",
        "unauthorized role or privilege",
        "insufficient resources for session",
        "invalid session",
    ];
    let silent = [
        "get auth capabilities error",
        "no response from remote controller",
        "error issuing get channel authentication",
        "unable to establish ipmi",
    ];
    let reason = important_lines(stderr);
    if refused.iter().any(|s| lower.contains(s)) {
        BmcError::Refused {
            address: address.to_string(),
            reason: format!("the credentials were refused ({reason})"),
        }
    } else if silent.iter().any(|s| lower.contains(s)) {
        BmcError::Unreachable {
            address: address.to_string(),
            reason: format!("no RMCP+ session ({reason})"),
        }
    } else {
        BmcError::Failed {
            address: address.to_string(),
            reason,
        }
    }
}

/// A summarised stderr without `-v`'s chatter.
fn important_lines(stderr: &str) -> String {
    let noise = [
        "Loading IANA PEN Registry",
        "Running Get VSO Capabilities",
        "Invalid completion code received: Invalid command",
        "Discovered IPMB address",
    ];
    let kept = stderr
        .split("; ")
        .filter(|part| !noise.iter().any(|n| part.contains(n)))
        .collect::<Vec<_>>()
        .join("; ");
    if kept.is_empty() {
        "ipmitool failed without a message".into()
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(address: &str) -> (String, u16) {
        parse_address(address).unwrap()
    }

    #[test]
    fn addresses_take_the_default_port_and_brackets_for_ipv6() {
        assert_eq!(ok("10.0.0.5"), ("10.0.0.5".into(), 623));
        assert_eq!(
            ok("bmc-1.rack.example:6230"),
            ("bmc-1.rack.example".into(), 6230)
        );
        assert_eq!(ok(" 127.0.0.1:1623 "), ("127.0.0.1".into(), 1623));
        assert_eq!(ok("[fd00::5]"), ("fd00::5".into(), 623));
        assert_eq!(ok("[fd00::5]:700"), ("fd00::5".into(), 700));
        assert_eq!(ok("fe80::1%eth0"), ("fe80::1%eth0".into(), 623));
    }

    #[test]
    fn bad_addresses_are_refused_before_ipmitool_runs() {
        for address in [
            "",
            "  ",
            "host:",
            "host:0",
            "host:70000",
            "host:http",
            "[fd00::5",
            "[fd00::5]x",
            "[not-v6]:623",
            "fd00::5:zz::1",
            "-oProxyCommand",
            "host name",
            "host;reboot",
            ":623",
        ] {
            assert!(
                matches!(parse_address(address), Err(BmcError::BadAddress { .. })),
                "{address:?} was accepted"
            );
        }
        let err = parse_address("admin:Sekrit-1@10.0.0.5").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("Sekrit-1"), "{err}");
    }

    #[test]
    fn power_status_is_read_from_ipmitools_line() {
        assert_eq!(parse_status("Chassis Power is on\n"), Some(PowerState::On));
        assert_eq!(parse_status("Chassis Power is off"), Some(PowerState::Off));
        assert_eq!(parse_status("something else"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn session_retries_fit_in_the_timeout() {
        for secs in [1, 2, 5, 6, 10, 30, 60, 120] {
            let (retries, per_try) = session_flags(Duration::from_secs(secs));
            assert!(retries >= 1 && per_try >= 1);
            let worst = 2 * (0..u64::from(retries)).map(|i| per_try + i).sum::<u64>();
            assert!(
                worst as f64 <= (secs as f64 * 0.6).max(2.0),
                "{secs}s: {retries} tries of {per_try}s take {worst}s"
            );
        }
        assert_eq!(session_flags(Duration::from_secs(10)), (2, 1));
        assert_eq!(session_flags(Duration::from_secs(60)), (2, 8));
    }

    #[test]
    fn failures_are_told_apart_by_what_ipmitool_said() {
        let refused = classify_failure(
            "bmc:623",
            "Loading IANA PEN Registry...; > RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session",
        );
        assert_eq!(
            refused,
            BmcError::Refused {
                address: "bmc:623".into(),
                reason: "the credentials were refused (> RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session)".into()
            }
        );
        assert!(matches!(
            classify_failure(
                "bmc",
                "RAKP 2 message indicates an error : unauthorized name"
            ),
            BmcError::Refused { .. }
        ));
        assert!(matches!(
            classify_failure(
                "bmc",
                "Get Auth Capabilities error; Error issuing Get Channel Authentication Capabilities request; Error: Unable to establish IPMI v2 / RMCP+ session"
            ),
            BmcError::Unreachable { .. }
        ));
        assert_eq!(
            classify_failure(
                "bmc",
                "Set Chassis Power Control to Cycle failed: Invalid data field in request"
            ),
            BmcError::Failed {
                address: "bmc".into(),
                reason: "Set Chassis Power Control to Cycle failed: Invalid data field in request"
                    .into()
            }
        );
        assert!(matches!(
            classify_failure("bmc", "Loading IANA PEN Registry..."),
            BmcError::Failed { reason, .. } if reason == "ipmitool failed without a message"
        ));
    }
}
