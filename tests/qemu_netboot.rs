//! Real network boot end to end: a QEMU machine (software emulation) with
//! stock firmware boots through kiln's DHCP server and boot scripts, is
//! discovered, installed and booted from its own disk, calling back over
//! HTTP at each step. Three firmware paths are exercised: SeaBIOS and OVMF
//! each starting in Debian's iPXE option ROM, and OVMF's own UEFI PXE
//! (the NIC's option ROM disabled) fetching kiln's EFI iPXE binary over
//! TFTP and chainloading it, as real servers do.
//!
//! Each test makes a network namespace with a bridge and a tap device;
//! kiln runs inside it (DHCP on the bridge, HTTP on the bridge's address),
//! QEMU's NIC sits on the tap. The machine's BMC is OpenIPMI's `ipmi_sim`
//! (RMCP+ on a second address of the bridge, a user and password), which
//! powers the machine: `chassis power on` starts QEMU, `off` stops it,
//! `cycle` does both, `reset` resets it, `bootdev` is recorded; QEMU's
//! `ipmi-bmc-extern` + `isa-ipmi-kcs` connect the guest to it, so the
//! guest reads its BMC's LAN address in-band (`ipmitool lan print`). The
//! node is defined by its BMC alone, as an operator racking a server does;
//! kiln powers it on (PXE once) and later cycles it for the install through
//! its own `ipmi` driver (`ipmitool -I lanplus`), and enrols the machine
//! into that node when its discovery image reports the BMC's address. The kernel is Debian's, the
//! initrds are busybox (`tests/qemu/`), built by `tests/qemu/build-images.sh`
//! once per set of inputs and cached outside the checkout, so a fresh clone
//! reuses them: in
//! `${KILN_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/qemu}/<key>`,
//! where the key hashes the kernel package's version, the busybox and
//! syslinux versions, ipmitool and its libraries, the script, `init` and
//! `udhcpc.script`. On failure (or with `KILN_QEMU_KEEP_ARTIFACTS` set) the
//! guest's serial console, stamped with seconds since power-on, kiln's,
//! QEMU's and the BMC's logs are kept under `target/qemu-artifacts/`.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
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
/// The BMC's LAN address: a second address on the bridge.
const BMC_IP: &str = "10.213.9.2";
/// What `lan print` reports as the BMC's MAC (ipmi_sim has no NIC of its own).
const BMC_MAC: &str = "52:54:00:13:09:02";
const BMC_USER: &str = "kiln";
/// The BMC's password (at most 16 characters for IPMI 1.5 users).
const BMC_PASSWORD: &str = "lab-bmc-Pw-0921";
/// ipmi_sim's VM interface QEMU's `ipmi-bmc-extern` connects to, on the
/// namespace's loopback.
const BMC_VM_PORT: u16 = 9002;
const KILN_PORT: u16 = 3000;
/// The whole flow, from QEMU's start to the disk's alive callback: a guard
/// against hangs, not a speed limit. The firmware's own network boot is the
/// slow one: booting from disk, OVMF waits about a minute for a PXE offer
/// with a boot file and another for an HTTP one before it tries the disk.
const FLOW_DEADLINE: Duration = Duration::from_secs(420);
/// How long the guest's console may trail what kiln's API already shows.
const CONSOLE_LAG: Duration = Duration::from_secs(30);
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

static SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Firmware {
    /// SeaBIOS (QEMU's default) with the e1000's iPXE option ROM.
    Bios,
    /// OVMF with the same ROM's EFI iPXE driver.
    Uefi,
    /// OVMF's own UEFI PXE on a virtio NIC without an option ROM: the
    /// firmware gets kiln's DHCP answer, fetches `ipxe.efi` over TFTP and
    /// chainloads it.
    UefiFirmwarePxe,
    /// OVMF's own UEFI HTTP boot (its PXE off) on the same NIC: kiln
    /// answers the `HTTPClient` vendor class with the URL of `ipxe.efi`.
    UefiFirmwareHttp,
}

impl Firmware {
    fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::UefiFirmwarePxe => "uefi-firmware-pxe",
            Firmware::UefiFirmwareHttp => "uefi-firmware-http",
        }
    }

    fn is_uefi(self) -> bool {
        self != Firmware::Bios
    }

    /// The kernel driver of the machine's NIC, as its inventory names it.
    fn kernel_nic_driver(self) -> &'static str {
        match self {
            Firmware::Bios | Firmware::Uefi => "e1000",
            Firmware::UefiFirmwarePxe | Firmware::UefiFirmwareHttp => "virtio_net",
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

#[test]
fn uefi_firmware_pxe_machine_is_discovered_installed_and_boots_from_its_disk() {
    run(Firmware::UefiFirmwarePxe, "52:54:00:13:09:23");
}

#[test]
fn uefi_firmware_http_boot_machine_is_discovered_installed_and_boots_from_its_disk() {
    run(Firmware::UefiFirmwareHttp, "52:54:00:13:09:24");
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

    // 0. The operator defines the node by its BMC alone and powers it on
    // through kiln: PXE for the next boot, then on.
    api.send(
        "POST",
        "/api/v2/nodes",
        json!({"name": node, "bmc": lab.bmc.node_bmc()}),
        201,
    )
    .await;
    lab.listen_console();
    let powered = api
        .send(
            "PUT",
            &format!("/api/v2/nodes/{node}/power"),
            json!({"action": "on", "next_boot": "pxe"}),
            200,
        )
        .await;
    assert_eq!(powered["state"], "on", "{powered}");
    assert_eq!(lab.bmc.is_on(), Some(true), "ipmi_sim says on too");
    let bmc_log = lab.bmc_power_log();
    assert!(
        bmc_log.contains("bmc: boot pxe"),
        "kiln set the next boot to PXE first: {bmc_log}"
    );

    // 1. The unknown machine gets a pool address and the discovery script,
    // boots the discovery initrd, which calls back alive and reports its
    // BMC's address: kiln merges it into the node its BMC defines, with
    // its discovery roles active.
    let discovered = poll(
        "the machine to be discovered, alive and enrolled",
        deadline,
        move || async move {
            api.get(&format!("/api/v2/nodes/{node}"))
                .await
                .filter(|n| n["alive"] == true && n["interfaces"][0]["mac"] == lab.mac)
        },
    )
    .await;
    let discovered_name = format!("d{}.lab.example", lab.mac.replace(':', ""));
    let gone = api
        .get_raw(&format!("/api/v2/nodes/{discovered_name}"))
        .await
        .map(|(status, _)| status);
    assert_eq!(gone, Some(404), "one node for the machine, never two");
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
    // QEMU was started with (`-m 512`, the virtio disk image, the NIC with
    // the lab's MAC, QEMU's own DMI vendor) and the BMC it reads in-band.
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
    assert_eq!(
        inventory["nics"][0]["driver"],
        lab.firmware.kernel_nic_driver(),
        "{inventory}"
    );
    assert_eq!(inventory["bmc"]["address"], BMC_IP, "{inventory}");
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
        "kiln's ipmi driver to cycle the machine",
        deadline,
        move || async move { lab.bmc_cycled_at() },
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
        ("ipmi_sim", "openipmi"),
        ("ipmitool", "ipmitool"),
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
        // kiln's TFTP server hands it to the firmware's own PXE.
        ("/usr/lib/ipxe/ipxe.efi", "ipxe"),
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

/// Copies one console connection to `out` line by line, each prefixed with
/// the seconds since `on` (the first power-on), until QEMU closes it.
fn stamp_lines(console: impl std::io::Read, out: &mut fs::File, on: Instant) {
    use std::io::{BufRead, Write};
    let mut reader = std::io::BufReader::new(console);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let _ = write!(out, "[{:7.2}] ", on.elapsed().as_secs_f64());
        let _ = out.write_all(&line);
        line.clear();
    }
}

/// The guest's serial console: QEMU connects to this socket each time the
/// BMC starts it, and every connection is stamped into `serial.log` in
/// turn, so a power cycle's boot follows the one before it in one file.
struct Console {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    fn listen(socket: PathBuf, log: PathBuf) -> Self {
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("listen on {}: {e}", socket.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut out = fs::File::create(log).unwrap();
        let thread = std::thread::spawn(move || {
            let mut on = None;
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let on = *on.get_or_insert_with(Instant::now);
                stamp_lines(stream, &mut out, on);
            }
        });
        Self {
            socket,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept; QEMU is gone by now, so no read blocks.
        let _ = std::os::unix::net::UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the machine's BMC answers and with which credentials: what an
/// operator gives kiln for a node (`bmc: {driver: "ipmi", ...}`), and what
/// the lab itself asks (its power state) with the same ipmitool.
#[derive(Clone)]
struct Bmc {
    /// ipmi_sim's LAN address (RMCP+ on the standard port, 623).
    address: String,
    username: String,
    password: String,
    netns: String,
}

impl std::fmt::Debug for Bmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmc")
            .field("address", &self.address)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Bmc {
    /// ipmitool's arguments for this BMC; the password comes from
    /// `IPMI_PASSWORD` (`-E`), never the command line. Cipher suite 3
    /// (ipmi_sim has no 17, and without `-C` ipmitool first waits on a
    /// cipher-suite query ipmi_sim drops).
    fn ipmitool_args(&self) -> [&str; 10] {
        [
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            &self.address,
            "-U",
            &self.username,
            "-E",
            "-N2",
        ]
    }

    /// Runs `ipmitool ... <args>` from inside the lab's namespace: its
    /// stdout, or stderr as the error.
    fn ipmitool(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "ipmitool"])
            .args(self.ipmitool_args())
            .args(args)
            .env("IPMI_PASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ipmitool: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ipmitool {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// What `chassis power status` says: `Some(true)` for on.
    fn is_on(&self) -> Option<bool> {
        let status = self.ipmitool(&["chassis", "power", "status"]).ok()?;
        Some(status.contains("Chassis Power is on"))
    }

    /// The node's `bmc` object for kiln's ipmi driver.
    fn node_bmc(&self) -> Value {
        json!({
            "driver": "ipmi",
            "address": self.address,
            "username": self.username,
            "password": self.password,
        })
    }
}

/// ipmi_sim and everything it started (the chassis script, QEMU): its own
/// process group, killed whole on drop, QEMU by its pid as well.
struct BmcProcess {
    child: Option<Child>,
    qemu_pid: PathBuf,
}

impl Drop for BmcProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = child.id() as libc::pid_t;
            // SAFETY: signals a process group this test created.
            unsafe { libc::killpg(group, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = fs::read_to_string(&self.qemu_pid)
            .ok()
            .and_then(|p| p.trim().parse::<libc::pid_t>().ok())
        {
            // SAFETY: a plain kill of the QEMU this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The QEMU machine's command line (run by the BMC's chassis script on
/// power-on).
fn qemu_command(firmware: Firmware, mac: &str, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "qemu-system-x86_64",
        "-machine",
        "accel=tcg",
        "-m",
        "512",
        "-display",
        "none",
    ]
    .map(String::from)
    .to_vec();
    let arg = |a: &mut Vec<String>, flag: &str, value: String| {
        a.push(flag.into());
        a.push(value);
    };
    // The console goes to the lab's socket (stamped into serial.log); the
    // monitor serves the BMC's hard reset.
    arg(
        &mut args,
        "-chardev",
        format!(
            "socket,id=console,path={}",
            dir.join("console.sock").display()
        ),
    );
    arg(&mut args, "-serial", "chardev:console".into());
    arg(
        &mut args,
        "-monitor",
        format!("unix:{},server,nowait", dir.join("monitor.sock").display()),
    );
    // The BMC: ipmi_sim's VM interface, reconnecting if it restarts.
    arg(
        &mut args,
        "-chardev",
        format!("socket,id=ipmi0,host=127.0.0.1,port={BMC_VM_PORT},reconnect=1"),
    );
    arg(
        &mut args,
        "-device",
        "ipmi-bmc-extern,chardev=ipmi0,id=bmc0".into(),
    );
    arg(&mut args, "-device", "isa-ipmi-kcs,bmc=bmc0".into());
    arg(
        &mut args,
        "-netdev",
        format!("tap,id=n0,ifname={TAP},script=no,downscript=no"),
    );
    let nic = match firmware {
        Firmware::Bios | Firmware::Uefi => format!("e1000,netdev=n0,mac={mac},bootindex=1"),
        // No option ROM: the firmware's own driver and PXE.
        Firmware::UefiFirmwarePxe | Firmware::UefiFirmwareHttp => {
            format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1,romfile=")
        }
    };
    arg(&mut args, "-device", nic);
    arg(
        &mut args,
        "-drive",
        format!(
            "file={},format=raw,if=none,id=d0",
            dir.join("disk.img").display()
        ),
    );
    arg(
        &mut args,
        "-device",
        "virtio-blk-pci,drive=d0,bootindex=2".into(),
    );
    if firmware.is_uefi() {
        arg(
            &mut args,
            "-drive",
            format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
        );
        arg(
            &mut args,
            "-drive",
            format!(
                "if=pflash,format=raw,file={}",
                dir.join("OVMF_VARS.fd").display()
            ),
        );
        // With iPXE's ROM only iPXE netboots: the firmware's own network
        // stack would add PXE and HTTP boot options that each wait up to a
        // minute for a boot offer kiln does not make before the disk is
        // tried. With the firmware's PXE, only IPv6 is off (kiln answers
        // DHCPv4); with its HTTP boot, its PXE is off too. A lab's firmware
        // setup would turn them off the same way.
        let knobs: &[&str] = match firmware {
            Firmware::UefiFirmwarePxe => &["IPv6PXESupport", "IPv6Support"],
            Firmware::UefiFirmwareHttp => &["IPv4PXESupport", "IPv6PXESupport", "IPv6Support"],
            _ => &[
                "IPv4PXESupport",
                "IPv6PXESupport",
                "IPv4Support",
                "IPv6Support",
            ],
        };
        for knob in knobs {
            arg(
                &mut args,
                "-fw_cfg",
                format!("name=opt/org.tianocore/{knob},string=no"),
            );
        }
    }
    args
}

/// Single-quotes `word` for sh.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Writes ipmi_sim's configuration into `dir`: the LAN channel (RMCP+,
/// one admin user) on the BMC's address, the VM interface QEMU connects
/// to, the LAN parameters the guest reads in-band, and the chassis script
/// that is the machine's power.
///
/// Power is a `chassis_control` program rather than `startcmd`: Debian's
/// ipmi_sim (2.0.33) refuses `chassis bootdev` (Set System Boot Options)
/// unless a chassis control program takes it, and with one the program
/// also owns power. The script starts QEMU on power on, kills it on off
/// (cycle is off, then on a second later), resets it on QEMU's monitor, and
/// records the boot device.
fn write_bmc_config(dir: &Path, bmc: &Bmc, qemu: &[String]) {
    let script = |name: &str, body: String| {
        let path = dir.join(name);
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let start = script(
        "start-qemu.sh",
        format!(
            "#!/bin/sh\nexec {}\n",
            qemu.iter()
                .map(|a| sh_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let chassis = script(
        "chassis.sh",
        format!(
            r#"#!/bin/sh
# ipmi_sim's chassis control: <mc> check|get|set name [value] ...
dir={dir}
pidfile=$dir/qemu.pid
stamp() {{ date -u +%Y-%m-%dT%H:%M:%S.%NZ; }}
alive() {{
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}}
op=$2
shift 2
case "$op" in
  check) exit 0 ;;
  get)
    for name in "$@"; do
      case "$name" in
        power) if alive; then echo "power:1"; else echo "power:0"; fi ;;
        boot) echo "boot:$(cat "$dir/bootdev" 2>/dev/null || echo default)" ;;
        *) exit 1 ;;
      esac
    done
    ;;
  set)
    while [ $# -ge 2 ]; do
      name=$1 value=$2
      shift 2
      echo "bmc: $name $value at $(stamp)" >> "$dir/bmc-power.log"
      case "$name" in
        power)
          if [ "$value" = 1 ]; then
            if ! alive; then
              {start} < /dev/null >> "$dir/qemu.log" 2>&1 &
              echo $! > "$pidfile"
            fi
          elif alive; then
            pid=$(cat "$pidfile")
            kill -TERM "$pid"
            for _ in $(seq 1 100); do alive || break; sleep 0.1; done
            alive && kill -KILL "$pid"
            for _ in $(seq 1 50); do alive || break; sleep 0.1; done
          fi
          ;;
        reset) alive && echo system_reset | socat - "UNIX-CONNECT:$dir/monitor.sock" > /dev/null ;;
        boot) echo "$value" > "$dir/bootdev" ;;
        *) exit 1 ;;
      esac
    done
    ;;
  *) exit 1 ;;
esac
exit 0
"#,
            dir = dir.display(),
            start = start.display(),
        ),
    );
    // What `ipmitool lan print` shows in-band (and over the LAN).
    let lan = script(
        "lancontrol.sh",
        format!(
            r#"#!/bin/sh
# ipmi_sim's LAN parameters: <device> check|get|set name ...
[ "$2" = get ] || exit 0
shift 2
for name in "$@"; do
  case "$name" in
    ip_addr_src) echo "ip_addr_src:static" ;;
    ip_addr) echo "ip_addr:{address}" ;;
    subnet_mask) echo "subnet_mask:255.255.255.0" ;;
    mac_addr) echo "mac_addr:{BMC_MAC}" ;;
    default_gw_ip_addr) echo "default_gw_ip_addr:{BRIDGE_IP}" ;;
    default_gw_mac_addr) echo "default_gw_mac_addr:00:00:00:00:00:00" ;;
    *) echo "$name:0" ;;
  esac
done
"#,
            address = bmc.address,
        ),
    );
    fs::write(
        dir.join("lan.conf"),
        format!(
            r#"name "kiln-lab"
set_working_mc 0x20
  startlan 1
    addr {address} 623
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid 6b696c6e2d6c61622d626d632d303031
    lan_config_program "{lan} lan0"
  endlan
  serial 15 127.0.0.1 {BMC_VM_PORT} codec VM
  chassis_control "{chassis} 0x20"
  user 2 true "{username}" "{password}" admin 10 md5
"#,
            address = bmc.address,
            lan = lan.display(),
            chassis = chassis.display(),
            username = bmc.username,
            password = bmc.password,
        ),
    )
    .unwrap();
    fs::write(
        dir.join("bmc.emu"),
        "mc_setbmc 0x20\n\
         mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n\
         sel_enable 0x20 1000 0x0a\n\
         mc_enable 0x20\n",
    )
    .unwrap();
    fs::create_dir_all(dir.join("bmc-state")).unwrap();
}

/// Everything one test runs, torn down in reverse order on drop: the BMC
/// with QEMU, the console, kiln, the advertisements, then the namespace
/// (with its bridge and tap).
struct Lab {
    // Field order is drop order.
    _bmc_process: BmcProcess,
    console: std::sync::Mutex<Option<Console>>,
    _kiln: Killed,
    _adverts: RouterAdvertisements,
    _netns: Netns,
    netns_name: String,
    bmc: Bmc,
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
        for address in [BRIDGE_IP, BMC_IP] {
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                BRIDGE,
            ]);
        }
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
        // UEFI HTTP boot fetches the EFI iPXE binary from /boot/files/.
        fs::copy("/usr/lib/ipxe/ipxe.efi", files.join("ipxe.efi")).expect("copy ipxe.efi");
        fs::copy(images.join("disk.img"), dir.path().join("disk.img")).unwrap();
        if firmware.is_uefi() {
            fs::copy(OVMF_VARS, dir.path().join("OVMF_VARS.fd")).expect("copy OVMF variables");
        }
        let mark_sector = fs::read_to_string(images.join("mark-sector"))
            .unwrap()
            .trim()
            .parse()
            .expect("mark sector");
        fs::write(dir.path().join("cluster.toml"), CLUSTER).unwrap();

        // The BMC, up and answering before kiln may power anything.
        let bmc = Bmc {
            address: BMC_IP.to_string(),
            username: BMC_USER.to_string(),
            password: BMC_PASSWORD.to_string(),
            netns: name.clone(),
        };
        write_bmc_config(dir.path(), &bmc, &qemu_command(firmware, mac, dir.path()));
        let bmc_log = fs::File::create(dir.path().join("bmc.log")).unwrap();
        let bmc_process = BmcProcess {
            child: Some(
                Command::new("ip")
                    .args(["netns", "exec", &name, "ipmi_sim", "-n"])
                    .arg("-c")
                    .arg(dir.path().join("lan.conf"))
                    .arg("-f")
                    .arg(dir.path().join("bmc.emu"))
                    .arg("-s")
                    .arg(dir.path().join("bmc-state"))
                    .current_dir(dir.path())
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(bmc_log.try_clone().unwrap())
                    .stderr(bmc_log)
                    .spawn()
                    .expect("start ipmi_sim"),
            ),
            qemu_pid: dir.path().join("qemu.pid"),
        };
        let answering = Instant::now() + Duration::from_secs(30);
        while bmc.is_on().is_none() {
            assert!(
                Instant::now() < answering,
                "ipmi_sim does not answer on {BMC_IP}: {}",
                fs::read_to_string(dir.path().join("bmc.log")).unwrap_or_default()
            );
        }
        assert_eq!(bmc.is_on(), Some(false), "the machine starts powered off");

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
            // PXE firmware fetches Debian's iPXE binaries from here.
            .env("KILN_TFTP__ENABLED", "true")
            .env("KILN_TFTP__ADDRESS", BRIDGE_IP)
            .env("KILN_PROVISIONER__FILES_DIR", &files)
            .env("KILN_PROVISIONER__EXPORT_DIR", dir.path().join("export"))
            .env("KILN_PROVISIONER__INSTALL_TIMEOUT_MS", "180000")
            // Seals the node's BMC password at rest.
            .env("KILN_BMC__SECRET_KEY", "qemu-lab-bmc-sealing-key")
            .env("KILN_SIM__REBOOT_DELAY_MS", "1000")
            .env("KILN_LOG__FORMAT", "pretty")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kiln");

        Lab {
            _bmc_process: bmc_process,
            console: std::sync::Mutex::new(None),
            _kiln: Killed(Some(kiln)),
            _adverts: adverts,
            _netns: netns,
            netns_name: name,
            bmc,
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

    /// The node as the operator names it in the rack.
    fn node_name(&self) -> String {
        format!("r1-{}.lab.example", self.firmware.name())
    }

    /// Listens on the serial console's socket before kiln powers the
    /// machine on; the console is stamped from here.
    fn listen_console(&self) {
        let dir = self.dir.path();
        self.console.lock().unwrap().get_or_insert_with(|| {
            Console::listen(dir.join("console.sock"), dir.join("serial.log"))
        });
    }

    fn serial(&self) -> String {
        fs::read(self.dir.path().join("serial.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What ipmi_sim's chassis control was told (`bmc: <name> <value> at <time>`).
    fn bmc_power_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("bmc-power.log")).unwrap_or_default()
    }

    /// When the BMC was first told to stop or reset the machine after the
    /// power-on: the start of kiln's power cycle.
    fn bmc_cycled_at(&self) -> Option<String> {
        self.bmc_power_log()
            .lines()
            .filter(|l| l.starts_with("bmc: power ") || l.starts_with("bmc: reset "))
            .skip_while(|l| !l.starts_with("bmc: power 1 "))
            .nth(1)
            .and_then(|l| l.split(" at ").nth(1))
            .map(str::to_string)
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

    /// Copies the serial console, kiln's, QEMU's and the BMC's logs and the
    /// power logs to `target/qemu-artifacts/<firmware>-<time>/`.
    fn keep_artifacts(&self, target: &Path) -> PathBuf {
        let dest = target.join("qemu-artifacts").join(format!(
            "{}-{}",
            self.firmware.name(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ));
        let _ = fs::create_dir_all(&dest);
        for file in [
            "serial.log",
            "kiln.log",
            "qemu.log",
            "bmc.log",
            "bmc-power.log",
        ] {
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
