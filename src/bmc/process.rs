//! Running a helper program (ipmitool, an operator's power command) for one
//! BMC call: bounded in time, killed with everything it started when the
//! time is up, and its output cut down to what fits in an error message
//! with the password taken out, whatever the program printed.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

use super::Secret;

/// The most of a program's output an error message carries.
const SUMMARY_CHARS: usize = 400;

/// What a program that ran to its end printed.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Why a program did not run to its end.
pub(crate) enum RunFailure {
    /// It could not be started (no such file, not executable, ...).
    Spawn(std::io::Error),
    /// It was still running after the timeout and was killed.
    TimedOut,
}

/// Runs `command` with no standard input, in a process group of its own,
/// for at most `timeout`; on timeout the whole group is killed, so a
/// script's children cannot keep it (or its pipes) alive.
pub(crate) async fn run(mut command: Command, timeout: Duration) -> Result<Finished, RunFailure> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().map_err(RunFailure::Spawn)?;
    let group = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => Ok(Finished {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(RunFailure::Spawn(e)),
        Err(_) => {
            if let Some(pid) = group.and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: kill(2) with a negative pid signals the process
                // group this call created (process_group(0) above); it
                // touches no memory.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            Err(RunFailure::TimedOut)
        }
    }
}

/// `text` as one line for an error message: lines trimmed and joined with
/// `; `, blank ones dropped, `password` (when not empty) replaced by `***`,
/// and cut to [`SUMMARY_CHARS`] characters.
pub(crate) fn summarise(text: &str, password: &Secret) -> String {
    let mut joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if !password.is_empty() {
        joined = joined.replace(password.expose(), "***");
    }
    if joined.chars().count() > SUMMARY_CHARS {
        joined = joined.chars().take(SUMMARY_CHARS).collect::<String>() + "…";
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_one_bounded_line_without_the_password() {
        let password = Secret::new("hunter2");
        let text = "  first line \n\n  the password is hunter2\n";
        assert_eq!(
            summarise(text, &password),
            "first line; the password is ***"
        );
        let long = "x".repeat(2 * SUMMARY_CHARS);
        assert_eq!(
            summarise(&long, &Secret::default()).chars().count(),
            SUMMARY_CHARS + 1
        );
    }

    #[tokio::test]
    async fn a_program_past_its_timeout_is_killed() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 30 & sleep 30"]);
        let result = run(command, Duration::from_millis(200)).await;
        assert!(matches!(result, Err(RunFailure::TimedOut)));
    }
}
