//! kiln's TFTP server against busybox's TFTP client (package busybox-static
//! or busybox), on the loopback interface.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kiln::provisioner::tftp::{TftpServer, TftpSettings};
use tokio::sync::oneshot;

fn tftp(dir: &Path, port: u16, args: &[&str]) -> Output {
    Command::new(require_tool("busybox", "busybox-static"))
        .current_dir(dir)
        .arg("tftp")
        .args(args)
        .args(["127.0.0.1", &port.to_string()])
        .output()
        .expect("run busybox tftp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_files_with_blksize_and_refuses_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..70_001u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.path().join("undionly.kpxe"), &big).unwrap();
    let server = TftpServer::bind(TftpSettings {
        bind: "127.0.0.1:0".parse().unwrap(),
        root: root.path().to_path_buf(),
        ..TftpSettings::default()
    })
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        for (blksize, name) in [("1024", "a.bin"), ("1468", "b.bin"), ("512", "c.bin")] {
            let got = tftp(
                &dir,
                port,
                &["-g", "-b", blksize, "-r", "undionly.kpxe", "-l", name],
            );
            assert!(
                got.status.success(),
                "blksize {blksize}: {}",
                String::from_utf8_lossy(&got.stderr)
            );
            assert_eq!(fs::read(dir.join(name)).unwrap(), big, "blksize {blksize}");
        }
        let missing = tftp(&dir, port, &["-g", "-r", "nope.efi", "-l", "x"]);
        assert!(!missing.status.success());
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("not found"),
            "{missing:?}"
        );
        let escape = tftp(
            &dir,
            port,
            &["-g", "-r", "../../../../etc/passwd", "-l", "y"],
        );
        assert!(!escape.status.success());
        assert!(
            String::from_utf8_lossy(&escape.stderr).contains("access denied"),
            "{escape:?}"
        );
        fs::write(dir.join("up.bin"), b"data").unwrap();
        let put = tftp(&dir, port, &["-p", "-l", "up.bin", "-r", "up.bin"]);
        assert!(!put.status.success());
        assert!(
            String::from_utf8_lossy(&put.stderr).contains("read-only"),
            "{put:?}"
        );
    })
    .await
    .unwrap();
    assert!(!root.path().join("up.bin").exists(), "nothing was written");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
pub fn require_tool(binary: &str, package: &str) -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(binary))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("`{binary}` not found: install the Debian package `{package}`"))
}
