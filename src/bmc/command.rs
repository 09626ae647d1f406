//! The `command` driver: an operator's program for what kiln has no
//! protocol for (a PDU, a VM monitor, an odd BMC). It is run once per call
//! with what to do in its environment:
//!
//! - `KILN_NODE`, `KILN_MAC` (the node's first interface, or empty);
//! - `KILN_POWER_ACTION`: `status`, `on`, `off`, `soft_off`, `cycle`,
//!   `boot_pxe` or `boot_disk`;
//! - `KILN_BMC_ADDRESS`, `KILN_BMC_USERNAME`, `KILN_BMC_PASSWORD` (empty
//!   when the node's `bmc` has none).
//!
//! It succeeds by exiting 0; for `status` it prints `on` or `off` (or
//! `unknown`). Its stderr, cut short and with the password taken out, is
//! the error when it fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::Command;

use super::process::{self, RunFailure};
use super::{BmcError, BmcTarget, NextBoot, PowerAction, PowerControl, PowerState, Secret};

/// Power through the operator's program.
#[derive(Clone, Debug)]
pub struct CommandDriver {
    program: PathBuf,
    timeout: Duration,
}

/// What one run of the power program is told.
#[derive(Clone, Debug, Default)]
pub struct HookCall<'a> {
    pub node: &'a str,
    pub mac: &'a str,
    /// `KILN_POWER_ACTION`.
    pub action: &'a str,
    pub address: &'a str,
    pub username: &'a str,
    pub password: Option<&'a Secret>,
}

impl CommandDriver {
    pub fn new(program: PathBuf, timeout: Duration) -> Self {
        Self { program, timeout }
    }

    fn call(
        &self,
        target: &BmcTarget,
        action: &'static str,
    ) -> BoxFuture<'static, Result<String, BmcError>> {
        let this = self.clone();
        let target = target.clone();
        Box::pin(async move {
            let call = HookCall {
                node: &target.node,
                mac: target.macs.first().map(String::as_str).unwrap_or(""),
                action,
                address: &target.address,
                username: &target.username,
                password: Some(&target.password),
            };
            run_hook(&this.program, this.timeout, &call).await
        })
    }
}

/// Runs the power program `program` once, as `call` says, for at most
/// `timeout`, and returns what it printed on stdout. The program (and
/// anything it started) is killed at the timeout.
pub async fn run_hook(
    program: &Path,
    timeout: Duration,
    call: &HookCall<'_>,
) -> Result<String, BmcError> {
    let empty = Secret::default();
    let password = call.password.unwrap_or(&empty);
    let mut command = Command::new(program);
    command
        .env("KILN_NODE", call.node)
        .env("KILN_MAC", call.mac)
        .env("KILN_POWER_ACTION", call.action)
        .env("KILN_BMC_ADDRESS", call.address)
        .env("KILN_BMC_USERNAME", call.username)
        .env("KILN_BMC_PASSWORD", password.expose());
    // The errors name the program, not a BMC address the node may not have.
    let address = program.display().to_string();
    let finished = process::run(command, timeout)
        .await
        .map_err(|failure| match failure {
            RunFailure::TimedOut => BmcError::Timeout {
                address: address.clone(),
                seconds: timeout.as_secs().max(1),
            },
            RunFailure::Spawn(e) => BmcError::Failed {
                address: address.clone(),
                reason: format!("cannot run it: {e}"),
            },
        })?;
    if finished.status.success() {
        Ok(finished.stdout)
    } else {
        let stderr = process::summarise(&finished.stderr, password);
        Err(BmcError::Failed {
            address,
            reason: if stderr.is_empty() {
                format!("{} ({})", finished.status, call.action)
            } else {
                format!("{} ({}): {stderr}", finished.status, call.action)
            },
        })
    }
}

/// The state a power program printed for `status`.
pub fn parse_status(stdout: &str) -> Option<PowerState> {
    let first = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    PowerState::parse(&first.to_ascii_lowercase())
}

impl PowerControl for CommandDriver {
    fn status(&self, target: &BmcTarget) -> BoxFuture<'static, Result<PowerState, BmcError>> {
        let call = self.call(target, "status");
        let address = self.program.display().to_string();
        let password = target.password.clone();
        Box::pin(async move {
            let stdout = call.await?;
            parse_status(&stdout).ok_or_else(|| BmcError::Failed {
                address,
                reason: format!(
                    "printed {:?} for status, not on, off or unknown",
                    process::summarise(&stdout, &password)
                ),
            })
        })
    }

    fn act(
        &self,
        target: &BmcTarget,
        action: PowerAction,
    ) -> BoxFuture<'static, Result<(), BmcError>> {
        let call = self.call(target, action.as_str());
        Box::pin(async move { call.await.map(drop) })
    }

    fn set_next_boot(
        &self,
        target: &BmcTarget,
        next: NextBoot,
    ) -> BoxFuture<'static, Result<(), BmcError>> {
        let action = match next {
            NextBoot::Pxe => "boot_pxe",
            NextBoot::Disk => "boot_disk",
        };
        let call = self.call(target, action);
        Box::pin(async move { call.await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::bmc::DriverKind;

    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("power.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn target() -> BmcTarget {
        BmcTarget {
            node: "n1".into(),
            macs: vec!["52:54:00:00:00:01".into()],
            driver: DriverKind::Command,
            address: "pdu-3:outlet-7".into(),
            username: "ops".into(),
            password: Secret::new("pdu-pass-9"),
            system: None,
            verify_tls: true,
        }
    }

    #[test]
    fn status_is_the_first_line_printed() {
        assert_eq!(parse_status("on\n"), Some(PowerState::On));
        assert_eq!(parse_status("\n  OFF \n"), Some(PowerState::Off));
        assert_eq!(parse_status("unknown"), Some(PowerState::Unknown));
        assert_eq!(parse_status("maybe"), None);
        assert_eq!(parse_status(""), None);
    }

    #[tokio::test]
    async fn the_program_is_told_the_node_the_action_and_the_bmc() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let program = script(
            dir.path(),
            &format!(
                "echo \"$KILN_NODE $KILN_MAC $KILN_POWER_ACTION $KILN_BMC_ADDRESS $KILN_BMC_USERNAME $KILN_BMC_PASSWORD\" >> {}\necho on",
                log.display()
            ),
        );
        let driver = CommandDriver::new(program, Duration::from_secs(10));
        assert_eq!(driver.status(&target()).await, Ok(PowerState::On));
        driver.act(&target(), PowerAction::SoftOff).await.unwrap();
        driver
            .set_next_boot(&target(), NextBoot::Pxe)
            .await
            .unwrap();
        let calls = std::fs::read_to_string(&log).unwrap();
        let prefix = "n1 52:54:00:00:00:01";
        let bmc = "pdu-3:outlet-7 ops pdu-pass-9";
        assert_eq!(
            calls,
            format!("{prefix} status {bmc}\n{prefix} soft_off {bmc}\n{prefix} boot_pxe {bmc}\n")
        );
    }

    #[tokio::test]
    async fn a_failure_carries_stderr_without_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(
            dir.path(),
            "echo \"login with $KILN_BMC_PASSWORD rejected\" >&2\nexit 3",
        );
        let driver = CommandDriver::new(program.clone(), Duration::from_secs(10));
        let err = driver.act(&target(), PowerAction::Cycle).await.unwrap_err();
        let BmcError::Failed { address, reason } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(address, &program.display().to_string());
        assert!(reason.contains("login with *** rejected"), "{reason}");
        assert!(reason.contains("(cycle)"), "{reason}");
        assert!(!err.to_string().contains("pdu-pass-9"));
    }

    #[tokio::test]
    async fn a_status_that_is_neither_on_nor_off_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "echo humming");
        let driver = CommandDriver::new(program, Duration::from_secs(10));
        let err = driver.status(&target()).await.unwrap_err();
        assert!(err.to_string().contains("\"humming\""), "{err}");
    }

    #[tokio::test]
    async fn a_program_that_hangs_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "sleep 60");
        let driver = CommandDriver::new(program, Duration::from_millis(300));
        let err = driver.act(&target(), PowerAction::On).await.unwrap_err();
        assert!(matches!(err, BmcError::Timeout { .. }), "{err:?}");
    }
}
