//! Real network boot end to end: a QEMU machine (software emulation) with
//! stock firmware and Debian's iPXE option ROM boots through kiln's DHCP
//! server and boot scripts, is discovered, installed and booted from its
//! own disk, calling back over HTTP at each step.
//!
//! Each test makes a network namespace with a bridge and a tap device;
//! kiln runs inside it (DHCP on the bridge, HTTP on the bridge's address),
//! QEMU's NIC sits on the tap, and the os-install role's power cycle is a
//! `system_reset` on QEMU's monitor socket. The kernel is Debian's, the
//! initrds are busybox (`tests/qemu/`), built by `tests/qemu/build-images.sh`
//! once per set of inputs and cached outside the checkout, so a fresh clone
//! reuses them: in
//! `${KILN_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/qemu}/<key>`,
//! where the key hashes the kernel package's version, the busybox and
//! syslinux versions, the script, `init` and `udhcpc.script`. On failure
//! (or with `KILN_QEMU_KEEP_ARTIFACTS` set) the guest's serial console,
//! stamped with seconds since power-on, and kiln's log are kept under
//! `target/qemu-artifacts/`.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "qemu-netboot-admin-token";
const BRIDGE: &str = "kbr0";
const TAP: &str = "ktap0";
const BRIDGE_IP: &str = "10.213.9.1";
const KILN_PORT: u16 = 3000;
/// The whole flow, from QEMU's start to the disk's alive callback.
const FLOW_DEADLINE: Duration = Duration::from_secs(240);
/// How long the guest's console may trail what kiln's API already shows.
const CONSOLE_LAG: Duration = Duration::from_secs(30);
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

static SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug)]
enum Firmware {
    /// SeaBIOS (QEMU's default) with the e1000's iPXE option ROM.
    Bios,
    /// OVMF with the same ROM's EFI iPXE driver.
    Uefi,
}

impl Firmware {
    fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

#[test]
fn bios_machine_is_discovered_installed_and_boots_from_its_disk() {
    run(Firmware::Bios, "52:54:00:13:09:21");
}

#[test]
fn uefi_machine_is_discovered_installed_and_boots_from_its_disk() {
    run(Firmware::Uefi, "52:54:00:13:09:22");
}

/// Builds the lab, runs the flow, and on failure keeps the guest's serial
/// console and kiln's log and puts the console's tail in the panic.
fn run(firmware: Firmware, mac: &str) {
    preflight();
    let target = target_dir();
    let images = build_images();
    let started = Instant::now();
    let lab = Lab::create(firmware, mac, &images);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.enter();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(flow(&lab))
    }));
    let elapsed = started.elapsed();
    match outcome {
        Ok(()) => {
            eprintln!(
                "qemu netboot ({}): discovered, installed and booted from disk in {:.1}s",
                firmware.name(),
                elapsed.as_secs_f64()
            );
            if std::env::var_os("KILN_QEMU_KEEP_ARTIFACTS").is_some() {
                lab.keep_artifacts(&target);
            }
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "test panicked".into());
            let kept = lab.keep_artifacts(&target);
            let serial = fs::read_to_string(lab.dir.path().join("serial.log")).unwrap_or_default();
            drop(lab);
            panic!(
                "{message}\n(after {:.1}s; serial console and kiln log kept in {})\n\
                 --- guest serial console, last lines ---\n{}",
                elapsed.as_secs_f64(),
                kept.display(),
                tail(&serial, 40)
            );
        }
    }
}

/// The seed flow on one real machine, in order.
async fn flow(lab: &Lab) {
    let api = &Api::new(&format!("http://{BRIDGE_IP}:{KILN_PORT}"));
    let deadline = Instant::now() + FLOW_DEADLINE;
    let node = &lab.node_name();

    // kiln answers before the machine powers on.
    poll("kiln to answer /health", deadline, move || async move {
        api.get_raw("/health").await.filter(|(s, _)| *s == 200)
    })
    .await;
    lab.power_on();

    // 1. An unknown machine gets a pool address and the discovery script,
    // boots the discovery initrd, which calls back alive: a new node with
    // its discovery roles active.
    let discovered = poll(
        "the machine to be discovered and alive",
        deadline,
        move || async move {
            api.get(&format!("/api/v2/nodes/{node}"))
                .await
                .filter(|n| n["alive"] == true)
        },
    )
    .await;
    assert_eq!(discovered["bootenv"], "sledgehammer", "{discovered}");
    let ip = discovered["interfaces"][0]["ip"]
        .as_str()
        .unwrap_or_default();
    assert!(
        ip.starts_with("10.213.9.1") && ip.len() == "10.213.9.100".len(),
        "a pool address: {discovered}"
    );
    assert_eq!(discovered["interfaces"][0]["mac"], lab.mac, "{discovered}");
    let discovery_roles = poll(
        "the discovery roles to be active",
        deadline,
        move || async move {
            let nrs = api.get(&format!("/api/v2/noderoles?node={node}")).await?;
            let roles = active_roles(&nrs);
            (roles.contains(&"kiln-managed-node".to_string())
                && roles.contains(&"inventory".to_string()))
            .then_some(nrs)
        },
    )
    .await;
    console_shows_in_order(
        lab,
        &["kiln-test: stage discovery"],
        deadline,
        &format!("the discovery roles are active: {discovery_roles}"),
    )
    .await;
    // The inventory role is active on the discovery image's report: what
    // QEMU was started with (`-m 512`, the virtio disk image, the e1000
    // with the lab's MAC, QEMU's own DMI vendor).
    let inventory = api
        .get(&format!("/api/v2/nodes/{node}"))
        .await
        .expect("the node")["inventory"]
        .clone();
    let memory = inventory["memory_mib"].as_u64().unwrap_or_default();
    assert!(
        (400..=512).contains(&memory),
        "-m 512 less the kernel's own: {inventory}"
    );
    let disk_bytes = fs::metadata(lab.dir.path().join("disk.img")).unwrap().len();
    assert_eq!(inventory["disks"][0]["name"], "vda", "{inventory}");
    assert_eq!(
        inventory["disks"][0]["size_bytes"], disk_bytes,
        "{inventory}"
    );
    // virtio-blk has no model string; QEMU gives the drive no serial here.
    assert_eq!(inventory["disks"][0]["model"], "", "{inventory}");
    assert_eq!(
        inventory["disks"].as_array().map(Vec::len),
        Some(1),
        "{inventory}"
    );
    assert_eq!(inventory["nics"][0]["mac"], lab.mac, "{inventory}");
    assert_eq!(inventory["nics"][0]["driver"], "e1000", "{inventory}");
    assert_eq!(inventory["system"]["vendor"], "QEMU", "{inventory}");
    assert!(
        inventory["cpus"]["count"].as_u64() >= Some(1),
        "{inventory}"
    );

    // 2. The operator binds it to provisioner-os-install and commits.
    api.send("POST", "/api/v2/deployments", json!({"name": "os"}), 201)
        .await;
    let install = api
        .send(
            "POST",
            "/api/v2/noderoles",
            json!({
                "node": node,
                "role": "provisioner-os-install",
                "deployment": "os",
                "data": {"target_os": "busybox"},
            }),
            201,
        )
        .await;
    let install_id = install["id"].as_i64().expect("noderole id");
    api.send("PUT", "/api/v2/deployments/os/commit", json!({}), 200)
        .await;

    // 3. The run schedules the power cycle; before it, bootenv goes to the
    // installer and the DHCP database re-runs.
    let cycled_at = poll(
        "the power command to cycle the machine",
        deadline,
        move || async move {
            lab.power_log()
                .lines()
                .find_map(|l| l.strip_prefix(&format!("cycle {node} {} at ", lab.mac)))
                .map(str::to_string)
        },
    )
    .await;
    let admin_runs = api
        .get("/api/v2/runs?node=admin.lab.example&limit=1000")
        .await
        .expect("admin runs");
    let dhcp_rerun = admin_runs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["role"] == "provisioner-dhcp-database" && r["reason"] == "bootenv-changed")
        .filter(|r| r["state"] == "succeeded")
        .filter_map(|r| r["finished_at"].as_str())
        .min()
        .map(str::to_string);
    let dhcp_rerun = dhcp_rerun.unwrap_or_else(|| {
        panic!("no provisioner-dhcp-database run for the bootenv change: {admin_runs}")
    });
    assert!(
        timestamp(&dhcp_rerun) < timestamp(&cycled_at),
        "the DHCP database re-ran at {dhcp_rerun}, after the power cycle at {cycled_at}"
    );

    // 4. It boots the installer from kiln, which calls back local; kiln's
    // next answer sends it to its disk, which boots and calls back alive.
    let back = poll(
        "the machine to come back alive on its disk",
        deadline,
        move || async move {
            let nr = api.get(&format!("/api/v2/noderoles/{install_id}")).await?;
            assert_ne!(
                nr["state"], "error",
                "provisioner-os-install failed: {}",
                nr["runlog"]
            );
            api.get(&format!("/api/v2/nodes/{node}"))
                .await
                .filter(|n| n["alive"] == true && n["bootenv"] == "local")
        },
    )
    .await;
    console_shows_in_order(
        lab,
        &[
            "kiln-test: stage discovery",
            "kiln-test: stage install",
            "kiln-test: installed to /dev/vda",
            "kiln-test: callback {\"bootenv\":\"local\"}: HTTP/1.0 200",
            "kiln-test: stage local",
            "kiln-test: callback {\"alive\":true}: HTTP/1.0 200",
        ],
        deadline,
        &back.to_string(),
    )
    .await;
    let mark = lab.disk_mark();
    assert!(
        mark.starts_with(&format!("KILN-INSTALLED node={node} ")),
        "the installer's mark on the disk: {mark:?}"
    );

    // 5. Its discovery roles run again; the install does not.
    let runs = poll(
        "the discovery roles to run again",
        deadline,
        move || async move {
            let runs = api
                .get(&format!("/api/v2/runs?node={node}&limit=1000"))
                .await?;
            let succeeded = |role: &str| {
                runs.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["role"] == role && r["state"] == "succeeded")
                    .count()
            };
            (succeeded("kiln-managed-node") >= 2 && succeeded("inventory") >= 2).then_some(runs)
        },
    )
    .await;
    let installs = runs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["role"] == "provisioner-os-install")
        .count();
    assert_eq!(installs, 1, "the install ran once: {runs}");
    let settled = poll("kiln to settle", deadline, move || async move {
        let nrs = api.get(&format!("/api/v2/noderoles?node={node}")).await?;
        let all_active = nrs
            .as_array()
            .is_some_and(|a| a.iter().all(|nr| nr["state"] == "active"));
        all_active.then_some(nrs)
    })
    .await;
    assert_eq!(
        active_roles(&settled).len(),
        3,
        "kiln-managed-node, inventory and provisioner-os-install: {settled}"
    );
}

fn active_roles(noderoles: &Value) -> Vec<String> {
    noderoles
        .as_array()
        .into_iter()
        .flatten()
        .filter(|nr| nr["state"] == "active")
        .filter_map(|nr| nr["role"].as_str().map(str::to_string))
        .collect()
}

/// Waits until the guest's serial console shows each of `lines`, in this
/// order, each after the end of the one before it; panics naming the first
/// line missing (with `context`) when they are not all there by `deadline`
/// or [`CONSOLE_LAG`] from now, whichever comes first.
///
/// The console is checked after kiln's API shows what the guest did, and
/// it trails the API: the guest prints a callback's line only once kiln has
/// answered it, and the line then goes through QEMU's stdout and
/// [`stamp_lines`] into `serial.log`. Reading the log once right after the
/// API changed state raced that (seen as a missing last callback line that
/// was in the kept log half a second later).
async fn console_shows_in_order(lab: &Lab, lines: &[&str], deadline: Instant, context: &str) {
    let deadline = deadline.min(Instant::now() + CONSOLE_LAG);
    loop {
        let serial = lab.serial();
        let mut at = 0;
        let mut missing = None;
        for line in lines {
            match serial[at..].find(line) {
                Some(found) => at += found + line.len(),
                None => {
                    missing = Some(line);
                    break;
                }
            }
        }
        let Some(missing) = missing else { return };
        assert!(
            Instant::now() < deadline,
            "the console does not show `{missing}` in order ({context})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn timestamp(rfc3339: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(rfc3339.trim())
        .unwrap_or_else(|e| panic!("not a timestamp `{rfc3339}`: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Polls `check` every 250 ms until it returns something or the deadline
/// passes.
async fn poll<T, F, Fut>(what: &str, deadline: Instant, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({}s for the whole flow)",
            FLOW_DEADLINE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// kiln's admin API, from inside the lab's namespace.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// Status and body, or `None` when kiln cannot be reached (yet).
    async fn get_raw(&self, path: &str) -> Option<(u16, String)> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// A 200 answer's JSON; `None` for anything else.
    async fn get(&self, path: &str) -> Option<Value> {
        let (status, body) = self.get_raw(path).await?;
        (status == 200).then(|| serde_json::from_str(&body).expect("JSON"))
    }

    async fn send(&self, method: &str, path: &str, body: Value, expect: u16) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

// ---------------------------------------------------------------------
// The lab: namespace, bridge, tap, router advertisements, kiln, QEMU.
// ---------------------------------------------------------------------

/// Fails (never skips) with what is missing.
fn preflight() {
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: the QEMU netboot test needs tap devices"
    );
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the QEMU netboot test makes network namespaces and must run as root"
    );
    for (binary, package) in [
        ("ip", "iproute2"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("socat", "socat"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
        ("syslinux", "syslinux"),
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("flock", "util-linux"),
    ] {
        assert!(
            ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(binary).is_file()),
            "`{binary}` not found: install the Debian package `{package}` (scripts/test does)"
        );
    }
    for (file, package) in [
        ("/usr/lib/ipxe/qemu/efi-e1000.rom", "ipxe-qemu"),
        (
            "/usr/lib/syslinux/modules/bios/ldlinux.c32",
            "syslinux-common",
        ),
    ] {
        assert!(
            Path::new(file).is_file(),
            "{file} not found: install the Debian package `{package}` (scripts/test does)"
        );
    }
}

/// `target/` (or `CARGO_TARGET_DIR`): cargo's temporary dir is inside it.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// The cached kernel, initrd and disk (built on first use); the script
/// picks the cache directory (`KILN_QEMU_CACHE` or the user's cache).
fn build_images() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu/build-images.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); its messages are above",
        script.display(),
        out.status
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process killed (and reaped) when dropped, even on panic.
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends router advertisements on the bridge (no prefix, not a default
/// router) so iPXE's IPv6 autoconfiguration finishes at once instead of
/// timing out on every boot.
struct RouterAdvertisements {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RouterAdvertisements {
    fn start(netns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ns_path = PathBuf::from("/run/netns").join(netns);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            enter_netns(&ns_path);
            let index = interface_index(BRIDGE);
            let socket = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::RAW,
                Some(socket2::Protocol::ICMPV6),
            )
            .expect("ICMPv6 socket");
            socket.set_multicast_hops_v6(255).expect("hop limit");
            socket
                .set_multicast_if_v6(index)
                .expect("multicast interface");
            let all_nodes = std::net::SocketAddrV6::new("ff02::1".parse().unwrap(), 0, 0, index);
            // Type 134, code 0, checksum (the kernel's), hop limit 64,
            // no flags, lifetime 0, reachable 0, retransmit 0.
            let advert = [134u8, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            while !flag.load(Ordering::Relaxed) {
                // Fails until the bridge has its link-local address.
                let _ = socket.send_to(&advert, &all_nodes.into());
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RouterAdvertisements {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn enter_netns(path: &Path) {
    let ns = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: setns on the calling thread with a valid namespace descriptor
    // changes only this thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn interface_index(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
}

/// Copies the console to `out` line by line, each prefixed with the seconds
/// since power-on, until QEMU exits.
fn stamp_lines(console: impl std::io::Read, mut out: fs::File) {
    use std::io::{BufRead, Write};
    let on = Instant::now();
    let mut reader = std::io::BufReader::new(console);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let _ = write!(out, "[{:7.2}] ", on.elapsed().as_secs_f64());
        let _ = out.write_all(&line);
        line.clear();
    }
}

/// Everything one test runs, torn down in reverse order on drop: QEMU,
/// kiln, the advertisements, then the namespace (with its bridge and tap).
struct Lab {
    // Field order is drop order.
    qemu: std::sync::Mutex<Killed>,
    _kiln: Killed,
    _adverts: RouterAdvertisements,
    _netns: Netns,
    netns_name: String,
    firmware: Firmware,
    mac: String,
    mark_sector: u64,
    dir: tempfile::TempDir,
}

/// The namespace; deleting it removes the bridge and the tap.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

impl Lab {
    fn create(firmware: Firmware, mac: &str, images: &Path) -> Self {
        let name = format!(
            "kiln-q{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]);
        let netns = Netns(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &name,
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{BRIDGE_IP}/24"),
            "dev",
            BRIDGE,
        ]);
        ip(&["-n", &name, "link", "set", BRIDGE, "up"]);
        ip(&[
            "netns", "exec", &name, "ip", "tuntap", "add", "dev", TAP, "mode", "tap",
        ]);
        ip(&["-n", &name, "link", "set", TAP, "master", BRIDGE]);
        ip(&["-n", &name, "link", "set", TAP, "up"]);
        let adverts = RouterAdvertisements::start(&name);

        let dir = tempfile::tempdir().expect("temp dir");
        let files = dir.path().join("files");
        for bootenv in ["sledgehammer", "busybox"] {
            fs::create_dir_all(files.join(bootenv)).unwrap();
            for file in ["vmlinuz", "initrd.img"] {
                fs::copy(images.join(file), files.join(bootenv).join(file)).unwrap();
            }
        }
        fs::copy(images.join("disk.img"), dir.path().join("disk.img")).unwrap();
        let mark_sector = fs::read_to_string(images.join("mark-sector"))
            .unwrap()
            .trim()
            .parse()
            .expect("mark sector");
        fs::write(dir.path().join("cluster.toml"), CLUSTER).unwrap();
        let power = dir.path().join("power.sh");
        fs::write(
            &power,
            format!(
                "#!/bin/sh\n# Power-cycles the machine as IPMI would: a reset on QEMU's monitor.\n\
                 echo \"$KILN_POWER_ACTION $KILN_NODE $KILN_MAC at $(date -u +%Y-%m-%dT%H:%M:%S.%NZ)\" >> {log}\n\
                 echo system_reset | socat - UNIX-CONNECT:{sock}\n",
                log = dir.path().join("power.log").display(),
                sock = dir.path().join("monitor.sock").display(),
            ),
        )
        .unwrap();
        fs::set_permissions(&power, fs::Permissions::from_mode(0o755)).unwrap();

        let log = fs::File::create(dir.path().join("kiln.log")).unwrap();
        let kiln = Command::new("ip")
            .args(["netns", "exec", &name, env!("CARGO_BIN_EXE_kiln"), "serve"])
            .arg("--cluster")
            .arg(dir.path().join("cluster.toml"))
            .current_dir(dir.path())
            .env(
                "KILN_DATABASE__URL",
                format!("sqlite://{}?mode=rwc", dir.path().join("kiln.db").display()),
            )
            .env("KILN_HTTP__BIND", format!("{BRIDGE_IP}:{KILN_PORT}"))
            .env("KILN_AUTH__ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KILN_DHCP__ENABLED", "true")
            .env("KILN_DHCP__INTERFACE", BRIDGE)
            // As an operator would set it: kiln answers as the bridge's
            // address and still hears the machines' broadcasts.
            .env("KILN_DHCP__ADDRESS", BRIDGE_IP)
            .env("KILN_PROVISIONER__FILES_DIR", &files)
            .env("KILN_PROVISIONER__EXPORT_DIR", dir.path().join("export"))
            .env("KILN_PROVISIONER__INSTALL_TIMEOUT_MS", "180000")
            .env("KILN_POWER__COMMAND", &power)
            .env("KILN_SIM__REBOOT_DELAY_MS", "1000")
            .env("KILN_LOG__FORMAT", "pretty")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kiln");

        Lab {
            qemu: std::sync::Mutex::new(Killed(None)),
            _kiln: Killed(Some(kiln)),
            _adverts: adverts,
            _netns: netns,
            netns_name: name,
            firmware,
            mac: mac.to_string(),
            mark_sector,
            dir,
        }
    }

    /// Moves the calling thread into the lab's namespace (for HTTP to kiln).
    fn enter(&self) {
        enter_netns(&PathBuf::from("/run/netns").join(&self.netns_name));
    }

    fn node_name(&self) -> String {
        format!("d{}.lab.example", self.mac.replace(':', ""))
    }

    fn power_on(&self) {
        let dir = self.dir.path();
        let mut qemu = Command::new("ip");
        qemu.args(["netns", "exec", &self.netns_name, "qemu-system-x86_64"])
            .args(["-machine", "accel=tcg", "-m", "512", "-display", "none"])
            // The console comes on stdout, stamped with the time since
            // power-on line by line into serial.log.
            .args(["-serial", "stdio"])
            .arg("-monitor")
            .arg(format!(
                "unix:{},server,nowait",
                dir.join("monitor.sock").display()
            ))
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={TAP},script=no,downscript=no"))
            .arg("-device")
            .arg(format!("e1000,netdev=n0,mac={},bootindex=1", self.mac))
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=none,id=d0",
                dir.join("disk.img").display()
            ))
            .args(["-device", "virtio-blk-pci,drive=d0,bootindex=2"]);
        match self.firmware {
            Firmware::Bios => {}
            Firmware::Uefi => {
                let vars = dir.join("OVMF_VARS.fd");
                fs::copy(OVMF_VARS, &vars).expect("copy OVMF variables");
                qemu.arg("-drive")
                    .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
                    .arg("-drive")
                    .arg(format!("if=pflash,format=raw,file={}", vars.display()));
                // Only iPXE (the option ROM's driver) netboots: the
                // firmware's own network stack would add PXE and HTTP boot
                // options that each wait up to a minute for a boot offer
                // kiln does not make before the disk is tried. A lab's
                // firmware setup would turn them off the same way.
                for knob in [
                    "IPv4PXESupport",
                    "IPv6PXESupport",
                    "IPv4Support",
                    "IPv6Support",
                ] {
                    qemu.arg("-fw_cfg")
                        .arg(format!("name=opt/org.tianocore/{knob},string=no"));
                }
            }
        }
        let log = fs::File::create(dir.join("qemu.log")).unwrap();
        let mut child = qemu
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start qemu-system-x86_64");
        let console = child.stdout.take().expect("qemu stdout");
        let serial = fs::File::create(dir.join("serial.log")).unwrap();
        std::thread::spawn(move || stamp_lines(console, serial));
        self.qemu.lock().unwrap().0 = Some(child);
    }

    fn serial(&self) -> String {
        fs::read(self.dir.path().join("serial.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn power_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("power.log")).unwrap_or_default()
    }

    /// What the installer wrote past the disk's filesystem.
    fn disk_mark(&self) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut disk = fs::File::open(self.dir.path().join("disk.img")).unwrap();
        disk.seek(SeekFrom::Start(self.mark_sector * 512)).unwrap();
        let mut sector = [0u8; 512];
        disk.read_exact(&mut sector).unwrap();
        String::from_utf8_lossy(&sector)
            .trim_end_matches('\0')
            .to_string()
    }

    /// Copies the serial console, kiln's and QEMU's logs and the power log
    /// to `target/qemu-artifacts/<firmware>-<time>/`.
    fn keep_artifacts(&self, target: &Path) -> PathBuf {
        let dest = target.join("qemu-artifacts").join(format!(
            "{}-{}",
            self.firmware.name(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ));
        let _ = fs::create_dir_all(&dest);
        for file in ["serial.log", "kiln.log", "qemu.log", "power.log"] {
            let _ = fs::copy(self.dir.path().join(file), dest.join(file));
        }
        eprintln!("qemu netboot artifacts: {}", dest.display());
        dest
    }
}

const CLUSTER: &str = r#"
[[network]]
name = "lab"
subnet = "10.213.9.0/24"
router = "10.213.9.1"
dns = ["10.213.9.1"]
domain = "lab.example"
pool = ["10.213.9.100", "10.213.9.199"]

# Discovery: the busybox initrd calls back alive and waits.
[[bootenv]]
name = "sledgehammer"
kernel = "sledgehammer/vmlinuz"
initrd = "sledgehammer/initrd.img"
append = "console=ttyS0 kiln.stage=discovery kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}"

# The installer: writes the disk, calls back bootenv local, reboots.
[[bootenv]]
name = "busybox-install"
kernel = "busybox/vmlinuz"
initrd = "busybox/initrd.img"
append = "console=ttyS0 kiln.stage=install kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}"

[[node]]
name = "admin.lab.example"
admin = true
alive = true
bootenv = "local"
interfaces = [{ mac = "52:54:00:99:00:01", ip = "10.213.9.1" }]

[[deployment]]
name = "system"
commit = true
bindings = [
  { role = "provisioner-dhcp-database", nodes = ["admin.lab.example"] },
  { role = "provisioner-dns-database", nodes = ["admin.lab.example"] },
]
"#;
