//! The script jig: runs a role's scripts in order with the node's data, on
//! kiln's host or on the node over ssh (the system client, batch mode).
//! Exit status decides; stdout and stderr become the runlog; a JSON file
//! the script writes to `$KILN_WALL_FILE` becomes the noderole's wall.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::Command;

use super::{Jig, JigContext, JigResult};

/// Runs scripts with a timeout each.
pub struct ScriptJig {
    scripts_dir: PathBuf,
    timeout: Duration,
}

impl ScriptJig {
    pub fn new(scripts_dir: PathBuf, timeout: Duration) -> Self {
        Self {
            scripts_dir,
            timeout,
        }
    }

    fn resolve(&self, script: &str) -> PathBuf {
        let path = Path::new(script);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.scripts_dir.join(path)
        }
    }
}

impl Jig for ScriptJig {
    fn run(&self, ctx: JigContext) -> BoxFuture<'static, JigResult> {
        let scripts: Vec<PathBuf> = ctx
            .role
            .scripts
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(|s| self.resolve(s))
                    .collect()
            })
            .unwrap_or_default();
        let timeout = self.timeout;
        Box::pin(async move { run_all(ctx, scripts, timeout).await })
    }
}

async fn run_all(ctx: JigContext, scripts: Vec<PathBuf>, timeout: Duration) -> JigResult {
    if scripts.is_empty() {
        return fail(
            String::new(),
            format!("role {} has no scripts", ctx.role.name),
        );
    }
    let workdir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return fail(String::new(), format!("cannot make a work directory: {e}")),
    };
    let data_file = workdir.path().join("data.json");
    let wall_file = workdir.path().join("wall.json");
    if let Err(e) = std::fs::write(&data_file, ctx.data.to_string()) {
        return fail(String::new(), format!("cannot write data file: {e}"));
    }
    let mut runlog = String::new();
    for script in &scripts {
        if let Err(reason) = check_executable(script) {
            return fail(runlog, reason);
        }
        let mut command = command_for(&ctx, script);
        command
            .envs(environment(&ctx, &data_file, &wall_file))
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return fail(runlog, format!("cannot start {}: {e}", script.display())),
        };
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return fail(runlog, format!("{} failed to run: {e}", script.display())),
            Err(_) => {
                return fail(
                    runlog,
                    format!(
                        "{} timed out after {}s and was killed",
                        script.display(),
                        timeout.as_secs()
                    ),
                )
            }
        };
        runlog.push_str(&String::from_utf8_lossy(&output.stdout));
        runlog.push_str(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            let reason = format!("{} exited with {}", script.display(), output.status);
            return fail(runlog, reason);
        }
    }
    let wall = match std::fs::read_to_string(&wall_file) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(e) => return fail(runlog, format!("wall file is not JSON: {e}")),
        },
        Err(_) => None,
    };
    JigResult {
        succeeded: true,
        wall,
        runlog,
        ..Default::default()
    }
}

fn fail(runlog: String, reason: String) -> JigResult {
    let mut result = JigResult::failed(reason);
    result.runlog.insert_str(0, &runlog);
    result
}

fn check_executable(script: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(script)
        .map_err(|_| format!("script {} does not exist", script.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("script {} is not executable", script.display()));
    }
    Ok(())
}

/// Locally: the script itself. Over ssh (noderole data `"ssh": {"user": ..}`
/// or `"ssh": true`): the script piped to `bash -s` on the node's address,
/// with the same variables exported first.
fn command_for(ctx: &JigContext, script: &Path) -> Command {
    let ssh = ctx.data.get("ssh").filter(|v| !v.is_null() && *v != false);
    let Some(ssh) = ssh else {
        return Command::new(script);
    };
    let user = ssh.get("user").and_then(|u| u.as_str()).unwrap_or("root");
    let host = ssh
        .get("host")
        .and_then(|h| h.as_str())
        .map(str::to_string)
        .or_else(|| ctx.address.clone())
        .unwrap_or_else(|| ctx.node.name.clone());
    let exports: String = environment(ctx, Path::new("data.json"), Path::new("wall.json"))
        .into_iter()
        .map(|(k, v)| format!("export {k}={}; ", shell_quote(&v)))
        .collect();
    let body = std::fs::read_to_string(script).unwrap_or_default();
    let mut command = Command::new("ssh");
    command
        .arg("-o")
        .arg("BatchMode=yes")
        .arg("-o")
        .arg("ConnectTimeout=10")
        .arg(format!("{user}@{host}"))
        .arg(format!("{exports}bash -c {}", shell_quote(&body)));
    command
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn environment(ctx: &JigContext, data_file: &Path, wall_file: &Path) -> Vec<(String, String)> {
    vec![
        ("KILN_NODE".into(), ctx.node.name.clone()),
        ("KILN_NODE_ID".into(), ctx.node.id.to_string()),
        (
            "KILN_NODE_ADDRESS".into(),
            ctx.address.clone().unwrap_or_default(),
        ),
        ("KILN_ROLE".into(), ctx.role.name.clone()),
        ("KILN_NODEROLE_ID".into(), ctx.noderole_id.to_string()),
        ("KILN_RUN_ID".into(), ctx.run_id.to_string()),
        ("KILN_DEPLOYMENT".into(), ctx.deployment.clone()),
        ("KILN_DATA".into(), ctx.data.to_string()),
        ("KILN_DATA_FILE".into(), data_file.display().to_string()),
        ("KILN_WALL_FILE".into(), wall_file.display().to_string()),
    ]
}
