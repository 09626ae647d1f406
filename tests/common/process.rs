//! The real `kiln serve` binary as a child process, for tests that kill it
//! with SIGKILL and start it again: its JSON log kept (for failure
//! messages) and its announcements (the port it listens on) waited for.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// A running `kiln serve`, killed when dropped.
pub struct KilnProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// How many log lines have been kept so far.
    lines: watch::Receiver<usize>,
}

impl KilnProcess {
    /// `kiln serve ARGS` in `dir` with `env` over a JSON log and HTTP on a
    /// free loopback port.
    pub fn serve(args: &[&std::ffi::OsStr], dir: &Path, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env("KILN_HTTP__BIND", "127.0.0.1:0")
            .env("KILN_LOG__FORMAT", "json")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start kiln");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (count, lines) = watch::channel(0);
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut kept = kept.lock().unwrap();
                kept.push(line);
                count.send_replace(kept.len());
            }
        });
        KilnProcess { child, log, lines }
    }

    /// What `pick` takes from the fields of the first log line it accepts,
    /// waiting up to a minute for that line.
    pub async fn announced<T>(&self, what: &str, pick: impl Fn(&Value) -> Option<T>) -> T {
        let mut lines = self.lines.clone();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                lines.borrow_and_update();
                let hit = self.log.lock().unwrap().iter().find_map(|line| {
                    let entry: Value = serde_json::from_str(line).ok()?;
                    pick(&entry["fields"])
                });
                if hit.is_some() {
                    return hit;
                }
                if lines.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten();
        found.unwrap_or_else(|| panic!("kiln never announced {what}:\n{}", self.log()))
    }

    /// The port of its "kiln is listening" line.
    pub async fn port(&self) -> u16 {
        self.announced("its port", |fields| {
            (fields["message"] == "kiln is listening")
                .then(|| fields["port"].as_u64())
                .flatten()
                .map(|p| p as u16)
        })
        .await
    }

    /// kill -9, and reaped.
    pub async fn kill_9(mut self) {
        self.child.start_kill().expect("SIGKILL kiln");
        self.child.wait().await.expect("reap kiln");
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}
