//! kiln's `ipmi` driver against a real BMC: OpenIPMI's `ipmi_sim` on
//! 127.0.0.1 and a free port, serving RMCP+ (lanplus) to ipmitool with a
//! user and password. Its chassis control program (written by the test)
//! plays the machine: powering on starts a process that stands in for it,
//! powering off kills that process, and the power status is whether it is
//! alive, so every power change is a real change of state. The boot device
//! the BMC was given is kept in a file the test reads back.
//!
//! Needs Debian's `openipmi` and `ipmitool` (scripts/test installs them).

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::bmc::{
    BmcError, BmcTarget, DriverKind, IpmiDriver, NextBoot, PowerAction, PowerControl, PowerState,
    Secret,
};

const USER: &str = "kiln-admin";
const PASSWORD: &str = "Rack-7-lanplus";

/// ipmi_sim's chassis control program: `get power|boot`, `set power 0|1`,
/// `set boot <device>`, `set shutdown 1` (ipmi_sim calls it with no device
/// argument). The machine is a `sleep` whose pid is in `machine.pid`.
const CHASSIS: &str = r#"#!/bin/sh
dir=$(dirname "$0")
alive() { [ -f "$dir/machine.pid" ] && kill -0 "$(cat "$dir/machine.pid")" 2>/dev/null; }
stop() { if alive; then kill "$(cat "$dir/machine.pid")"; fi; rm -f "$dir/machine.pid"; }
op=$1
shift
if [ "$op" = get ]; then
  for p in "$@"; do
    case $p in
      power) if alive; then echo power:1; else echo power:0; fi ;;
      boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
      *) echo "no parameter $p"; exit 1 ;;
    esac
  done
  exit 0
fi
while [ $# -ge 2 ]; do
  case $1 in
    power)
      if [ "$2" = 1 ]; then
        alive || { sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > "$dir/machine.pid"; }
      else
        stop
      fi ;;
    shutdown) stop ;;
    boot) echo "$2" > "$dir/boot" ;;
  esac
  shift 2
done
"#;

/// ipmi_sim's command file: one BMC at 0x20 with chassis support.
const EMU: &str = "mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
";

/// A running ipmi_sim and its files; killed (with the machine process, in
/// its process group) when dropped, also when a test panics.
struct Sim {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: signals the process group spawned below (process_group(0)).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
        if let Some(pid) = self.machine_pid() {
            // SAFETY: kill(2) on the machine process the chassis script started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Sim {
    fn start() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let chassis = dir.path().join("chassis.sh");
        std::fs::write(&chassis, CHASSIS).unwrap();
        std::fs::set_permissions(&chassis, std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_udp_port();
        let lan = format!(
            "name \"kiln-test\"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control \"{chassis}\"
user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight
",
            chassis = chassis.display()
        );
        std::fs::write(dir.path().join("lan.conf"), lan).unwrap();
        std::fs::write(dir.path().join("bmc.emu"), EMU).unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let child = Command::new("ipmi_sim")
            .arg("-n")
            .arg("-c")
            .arg(dir.path().join("lan.conf"))
            .arg("-f")
            .arg(dir.path().join("bmc.emu"))
            .arg("-s")
            .arg(dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("ipmi_sim (Debian's openipmi) runs");
        Sim { child, dir, port }
    }

    fn target(&self, password: &str) -> BmcTarget {
        BmcTarget {
            node: "n1".into(),
            macs: vec![],
            driver: DriverKind::Ipmi,
            address: format!("127.0.0.1:{}", self.port),
            username: USER.into(),
            password: Secret::new(password),
            system: None,
            verify_tls: true,
        }
    }

    fn machine_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("machine.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn machine_runs(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        self.machine_pid()
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    }

    fn boot_device(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("boot"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Waits until the BMC answers a status call (ipmi_sim has started).
    async fn ready(&self, driver: &IpmiDriver) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match driver.status(&self.target(PASSWORD)).await {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => panic!("ipmi_sim never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn driver(timeout: Duration) -> IpmiDriver {
    IpmiDriver::new(PathBuf::from("ipmitool"), timeout)
}

/// Polls the BMC until it reports `state` (ipmi_sim powers a cycled
/// machine back on a second after it powered it off).
async fn wait_for(driver: &IpmiDriver, target: &BmcTarget, state: PowerState) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = driver.status(target).await.unwrap();
        if now == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the BMC still says {now:?}, not {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn power_on_cycle_and_off_change_the_machine() {
    let sim = Sim::start();
    let driver = driver(Duration::from_secs(10));
    sim.ready(&driver).await;
    let target = sim.target(PASSWORD);

    assert_eq!(driver.status(&target).await.unwrap(), PowerState::Off);
    assert!(!sim.machine_runs());

    driver.act(&target, PowerAction::On).await.unwrap();
    assert_eq!(driver.status(&target).await.unwrap(), PowerState::On);
    assert!(sim.machine_runs());
    let first = sim.machine_pid().unwrap();

    // A cycle stops the machine and starts it again: a new process.
    driver.act(&target, PowerAction::Cycle).await.unwrap();
    wait_for(&driver, &target, PowerState::On).await;
    let second = sim.machine_pid().unwrap();
    assert_ne!(first, second, "the machine was not restarted");

    driver.act(&target, PowerAction::Off).await.unwrap();
    assert_eq!(driver.status(&target).await.unwrap(), PowerState::Off);
    assert!(!sim.machine_runs());

    // A cycle of a machine that is off ends with it on.
    driver.act(&target, PowerAction::Cycle).await.unwrap();
    wait_for(&driver, &target, PowerState::On).await;
    assert!(sim.machine_runs());

    driver.act(&target, PowerAction::SoftOff).await.unwrap();
    wait_for(&driver, &target, PowerState::Off).await;
}

#[tokio::test]
async fn the_next_boot_device_reaches_the_bmc() {
    let sim = Sim::start();
    let driver = driver(Duration::from_secs(10));
    sim.ready(&driver).await;
    let target = sim.target(PASSWORD);

    driver.set_next_boot(&target, NextBoot::Pxe).await.unwrap();
    assert_eq!(sim.boot_device(), "pxe");
    // ipmi_sim names IPMI's "force boot from the default hard drive" so.
    driver.set_next_boot(&target, NextBoot::Disk).await.unwrap();
    assert_eq!(sim.boot_device(), "default");
    // Legacy BIOS machines get the flag without efiboot; still accepted.
    let legacy = driver.clone().with_efiboot(false);
    legacy.set_next_boot(&target, NextBoot::Pxe).await.unwrap();
    assert_eq!(sim.boot_device(), "pxe");
}

#[tokio::test]
async fn wrong_credentials_are_refused_without_the_password_in_the_error() {
    let sim = Sim::start();
    let driver = driver(Duration::from_secs(10));
    sim.ready(&driver).await;

    let wrong = "Not-the-password-42";
    let err = driver.status(&sim.target(wrong)).await.unwrap_err();
    assert!(
        matches!(&err, BmcError::Refused { reason, .. } if reason.contains("credentials were refused")),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(PASSWORD),
        "{shown}"
    );

    let mut stranger = sim.target(PASSWORD);
    stranger.username = "nobody".into();
    let err = driver.act(&stranger, PowerAction::On).await.unwrap_err();
    assert!(matches!(err, BmcError::Refused { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
    assert!(!sim.machine_runs(), "a refused call powered the machine on");
}

#[tokio::test]
async fn an_unreachable_bmc_fails_within_the_timeout() {
    // Nothing listens on this port.
    let port = free_udp_port();
    let timeout = Duration::from_secs(4);
    let driver = driver(timeout);
    let target = BmcTarget {
        node: "n1".into(),
        macs: vec![],
        driver: DriverKind::Ipmi,
        address: format!("127.0.0.1:{port}"),
        username: USER.into(),
        password: Secret::new(PASSWORD),
        system: None,
        verify_tls: true,
    };
    let started = Instant::now();
    let err = driver.status(&target).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, BmcError::Unreachable { .. } | BmcError::Timeout { .. }),
        "{err:?}"
    );
    // Bounded by the driver's timeout (ipmitool is killed at it), not a hang.
    assert!(took < timeout + Duration::from_secs(3), "took {took:?}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
}

#[tokio::test]
async fn a_bad_address_never_reaches_ipmitool() {
    let driver = driver(Duration::from_secs(5));
    let target = BmcTarget {
        node: "n1".into(),
        macs: vec![],
        driver: DriverKind::Ipmi,
        address: "-oProxyCommand=true".into(),
        username: USER.into(),
        password: Secret::new(PASSWORD),
        system: None,
        verify_tls: true,
    };
    let err = driver.status(&target).await.unwrap_err();
    assert!(matches!(err, BmcError::BadAddress { .. }), "{err:?}");
}

#[tokio::test]
async fn the_password_is_never_on_ipmitools_command_line() {
    let sim = Sim::start();
    // A wrapper that records ipmitool's arguments and environment, then
    // runs the real one.
    let record = sim.dir.path().join("ipmitool.args");
    let wrapper = sim.dir.path().join("ipmitool");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"args: $*\" >> {0}\necho \"env: $IPMI_PASSWORD\" >> {0}\nexec ipmitool \"$@\"\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let driver = IpmiDriver::new(wrapper, Duration::from_secs(10));
    sim.ready(&driver).await;
    driver
        .act(&sim.target(PASSWORD), PowerAction::On)
        .await
        .unwrap();
    let recorded = std::fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = recorded
        .lines()
        .filter(|l| l.starts_with("args:"))
        .collect();
    assert!(!args.is_empty());
    for line in &args {
        assert!(!line.contains(PASSWORD), "{line}");
        assert!(line.contains(" -E "), "{line}");
    }
    assert!(recorded.contains(&format!("env: {PASSWORD}")));
}
