//! kiln's `redfish` driver against a real Redfish service: sushy-tools'
//! `sushy-emulator` with its fake systems driver, on 127.0.0.1 and a free
//! port, behind HTTP basic auth (a bcrypt htpasswd file the test writes);
//! first the driver alone, then kiln driving it: a node defined by its
//! Redfish BMC alone learns its MACs and powers on PXE once through the
//! API, wrong credentials and a dead BMC answer 502, and an install whose
//! reboot the BMC refuses ends in error with the BMC's message.
//! sushy-tools is installed, at a pinned version, into a virtualenv under
//! `~/.cache/kiln/` by `tests/bmc/sushy-venv.sh`.
//!
//! The fake driver applies a power change 1–11 s after it accepted it (a
//! restart turns the machine off at once, then on), so the tests poll for
//! the state they asked for; it also always reports
//! `BootSourceOverrideEnabled: Continuous` whatever it was sent, so only
//! the stored boot target is read back.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::bmc::{
    BmcError, BmcTarget, DriverKind, NextBoot, PowerAction, PowerControl, PowerState,
    RedfishDriver, Secret,
};
use serde_json::{json, Value};

const USER: &str = "kiln-admin";
const PASSWORD: &str = "Redfish-rack-9";
const SYSTEM: &str = "8cbc7f8a-6e2b-4c5e-9d7a-3b1f0c2d4e51";
const OTHER: &str = "2f8e1a44-0b6c-4d3e-8f9a-7c6b5a4d3e21";

/// The sushy-tools virtualenv (installed on first use).
fn venv() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bmc/sushy-venv.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A running sushy-emulator and its files; killed when dropped, also when a
/// test panics.
struct Emulator {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SAFETY: signals the process group spawned below (process_group(0)).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// An emulator with two fake systems (`SYSTEM` off with two NICs,
    /// `OTHER`), or only `SYSTEM` when `single`; over HTTPS with a
    /// self-signed certificate when `tls`.
    async fn start(single: bool, tls: bool) -> Emulator {
        let venv = venv();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let hash = Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "import bcrypt, os; print(bcrypt.hashpw(os.environ['PW'].encode(), bcrypt.gensalt(rounds=4)).decode())",
            ])
            .env("PW", PASSWORD)
            .output()
            .unwrap();
        assert!(hash.status.success());
        let hash = String::from_utf8(hash.stdout).unwrap();
        std::fs::write(path("htpasswd"), format!("{USER}:{}\n", hash.trim())).unwrap();
        std::fs::create_dir(path("state")).unwrap();
        let port = free_tcp_port();
        let other = if single {
            String::new()
        } else {
            format!("{{'uuid': '{OTHER}', 'name': 'other', 'power_state': 'On', 'nics': []}},")
        };
        let mut config = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = {port}
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_AUTH_FILE = '{auth}'
SUSHY_EMULATOR_STATE_DIR = '{state}'
SUSHY_EMULATOR_FAKE_SYSTEMS = [
    {{'uuid': '{SYSTEM}', 'name': 'n1', 'power_state': 'Off',
      'nics': [{{'mac': '52:54:00:AB:CD:01', 'ip': '10.0.0.5'}},
               {{'mac': '52:54:00:AB:CD:02', 'ip': '10.0.1.5'}}]}},
    {other}
]
",
            auth = path("htpasswd"),
            state = path("state"),
        );
        let scheme = if tls {
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .args(["-keyout", &path("key.pem"), "-out", &path("cert.pem")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(made.success(), "openssl could not make a certificate");
            config += &format!(
                "SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n",
                path("cert.pem"),
                path("key.pem")
            );
            "https"
        } else {
            "http"
        };
        std::fs::write(path("emulator.conf"), config).unwrap();
        let child = Command::new(venv.join("bin/sushy-emulator"))
            .arg("--config")
            .arg(path("emulator.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("emulator.log")).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut emulator = Emulator {
            child,
            base: format!("{scheme}://127.0.0.1:{port}"),
            _dir: dir,
            http,
        };
        emulator.ready().await;
        emulator
    }

    /// Waits until the emulator answers HTTP (a 401 will do).
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/redfish/v1/", self.base);
        loop {
            if self.http.get(&url).send().await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut log = String::new();
                let _ = std::fs::File::open(self._dir.path().join("emulator.log"))
                    .and_then(|mut f| f.read_to_string(&mut log));
                panic!("sushy-emulator exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "sushy-emulator never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn target(&self, system: Option<&str>) -> BmcTarget {
        BmcTarget {
            node: "n1".into(),
            macs: vec![],
            driver: DriverKind::Redfish,
            address: self.base.clone(),
            username: USER.into(),
            password: Secret::new(PASSWORD),
            system: system.map(String::from),
            verify_tls: true,
        }
    }

    /// The system resource as the emulator shows it, read past the driver.
    async fn system(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/redfish/v1/Systems/{id}", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn driver(timeout: Duration) -> RedfishDriver {
    RedfishDriver::new(timeout)
}

/// Polls until the BMC reports `state`.
async fn wait_for(driver: &RedfishDriver, target: &BmcTarget, state: PowerState) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = driver.status(target).await.unwrap();
        if now == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the BMC still says {now:?}, not {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn no_password(err: &BmcError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[tokio::test]
async fn status_boot_override_reset_and_nics() {
    let emulator = Emulator::start(false, false).await;
    let driver = driver(Duration::from_secs(10));
    let target = emulator.target(Some(SYSTEM));

    assert_eq!(driver.status(&target).await.unwrap(), PowerState::Off);

    driver.set_next_boot(&target, NextBoot::Pxe).await.unwrap();
    let system = emulator.system(SYSTEM).await;
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Pxe");
    driver.set_next_boot(&target, NextBoot::Disk).await.unwrap();
    let system = emulator.system(SYSTEM).await;
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Hdd");

    assert_eq!(
        driver.macs(&target).await.unwrap(),
        ["52:54:00:ab:cd:01", "52:54:00:ab:cd:02"]
    );

    // A cycle of a machine that is off powers it on.
    driver.act(&target, PowerAction::Cycle).await.unwrap();
    wait_for(&driver, &target, PowerState::On).await;
    // On again is done already: no request the BMC could refuse.
    driver.act(&target, PowerAction::On).await.unwrap();

    // A cycle of a running machine is a restart: off at once, then on.
    driver.act(&target, PowerAction::Cycle).await.unwrap();
    assert_eq!(driver.status(&target).await.unwrap(), PowerState::Off);
    wait_for(&driver, &target, PowerState::On).await;

    driver.act(&target, PowerAction::Off).await.unwrap();
    wait_for(&driver, &target, PowerState::Off).await;
    driver.act(&target, PowerAction::On).await.unwrap();
    wait_for(&driver, &target, PowerState::On).await;
    driver.act(&target, PowerAction::SoftOff).await.unwrap();
    wait_for(&driver, &target, PowerState::Off).await;

    // The other system was never touched.
    assert_eq!(emulator.system(OTHER).await["PowerState"], "On");
}

#[tokio::test]
async fn the_system_is_the_only_one_or_must_be_named() {
    let emulator = Emulator::start(false, false).await;
    let driver = driver(Duration::from_secs(10));
    let err = driver.status(&emulator.target(None)).await.unwrap_err();
    assert!(
        matches!(&err, BmcError::Failed { reason, .. } if reason.contains("2 systems") && reason.contains("bmc.system")),
        "{err:?}"
    );
    assert_eq!(
        driver.status(&emulator.target(Some(OTHER))).await.unwrap(),
        PowerState::On
    );
    let err = driver
        .status(&emulator.target(Some("no-such-system")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BmcError::Failed { reason, .. } if reason.contains("404") && reason.contains("not found")),
        "{err:?}"
    );
    drop(emulator);

    let single = Emulator::start(true, false).await;
    assert_eq!(
        driver.status(&single.target(None)).await.unwrap(),
        PowerState::Off
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_without_the_password() {
    let emulator = Emulator::start(false, false).await;
    let driver = driver(Duration::from_secs(10));
    let mut target = emulator.target(Some(SYSTEM));
    target.password = Secret::new("Wrong-guess-17");
    let err = driver.status(&target).await.unwrap_err();
    assert!(
        matches!(&err, BmcError::Refused { reason, .. } if reason.contains("credentials were refused") && reason.contains("401")),
        "{err:?}"
    );
    no_password(&err);
    assert!(!format!("{err:?}").contains("Wrong-guess-17"));
    let err = driver.act(&target, PowerAction::On).await.unwrap_err();
    assert!(matches!(err, BmcError::Refused { .. }), "{err:?}");
    assert_eq!(emulator.system(SYSTEM).await["PowerState"], "Off");
}

#[tokio::test]
async fn an_unreachable_or_silent_bmc_fails_within_the_timeout() {
    let timeout = Duration::from_secs(2);
    let driver = driver(timeout);
    let target = |address: String| BmcTarget {
        node: "n1".into(),
        macs: vec![],
        driver: DriverKind::Redfish,
        address,
        username: USER.into(),
        password: Secret::new(PASSWORD),
        system: None,
        verify_tls: true,
    };

    // Nothing listens: the connection is refused.
    let closed = free_tcp_port();
    let err = driver
        .status(&target(format!("http://127.0.0.1:{closed}")))
        .await
        .unwrap_err();
    assert!(matches!(err, BmcError::Unreachable { .. }), "{err:?}");
    no_password(&err);

    // A listener that accepts and never answers: the request times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let err = driver.status(&target(address)).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, BmcError::Timeout { .. }), "{err:?}");
    assert!(took < timeout + Duration::from_secs(3), "took {took:?}");
    no_password(&err);
}

#[tokio::test]
async fn tls_is_verified_unless_the_node_says_not_to() {
    let emulator = Emulator::start(true, true).await;
    let driver = driver(Duration::from_secs(10));
    let mut target = emulator.target(None);
    assert!(target.address.starts_with("https://"));

    let err = driver.status(&target).await.unwrap_err();
    assert!(
        matches!(&err, BmcError::Unreachable { reason, .. } if reason.to_lowercase().contains("certificate")),
        "{err:?}"
    );

    target.verify_tls = false;
    assert_eq!(driver.status(&target).await.unwrap(), PowerState::Off);
}

const KEY: &str = "redfish-test-sealing-key";

/// kiln with a short BMC timeout, defined nodes from `cluster` (if any);
/// returns its base URL and what must live as long as it.
async fn kiln(
    backend: kiln::db::Backend,
    cluster: Option<String>,
) -> (String, common::TestDb, tempfile::TempDir) {
    let test_db = common::TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    let mut settings = common::test_settings(&test_db);
    settings.bmc.secret_key = KEY.into();
    settings.bmc.poll_interval_ms = 0;
    settings.bmc.timeout_ms = 3000;
    settings.cluster.builtin_roles = true;
    settings.sim.reboot_delay_ms = 100;
    settings.provisioner.install_timeout_ms = 60_000;
    if let Some(cluster) = &cluster {
        std::fs::write(&file, cluster).unwrap();
    }
    let app = kiln::app::Application::build_with_cluster(
        settings,
        cluster.as_ref().map(|_| file.as_path()),
    )
    .await
    .expect("kiln starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    common::stop_at_end(app.stopper());
    actix_web::rt::spawn(app.run_until_stopped());
    (base, test_db, dir)
}

/// A request with the admin token: status and body, which never carries
/// the password.
async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(common::TEST_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(PASSWORD),
        "a response carries the password: {text}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

on_both_databases!(
    a_node_defined_by_its_redfish_bmc_alone_is_enrolled_and_powered,
    |backend| async move {
        let emulator = Emulator::start(true, false).await;
        let (base, _db, _dir) = kiln(backend, None).await;
        let bmc = |password: &str, address: &str| {
            json!({
            "driver": "redfish", "address": address, "username": USER, "password": password})
        };
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{base}/api/v2/nodes"),
            Some(json!({"name": "r2-u01.lab.example", "bmc": bmc(PASSWORD, &emulator.base)})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["interfaces"], json!([]));

        // On, PXE once: the BMC was told, and lists the NICs kiln now knows.
        let (status, body) = call(
            reqwest::Method::PUT,
            format!("{base}/api/v2/nodes/r2-u01.lab.example/power"),
            Some(json!({"action": "on", "next_boot": "pxe"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["error"].is_null(), "{body}");
        let system = emulator.system(SYSTEM).await;
        assert_eq!(
            system["Boot"]["BootSourceOverrideTarget"], "Pxe",
            "{system}"
        );
        let (_, node) = call(
            reqwest::Method::GET,
            format!("{base}/api/v2/nodes/r2-u01.lab.example"),
            None,
        )
        .await;
        let macs: Vec<&str> = node["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["mac"].as_str().unwrap())
            .collect();
        assert_eq!(macs, ["52:54:00:ab:cd:01", "52:54:00:ab:cd:02"], "{node}");

        // Wrong credentials and a BMC that is not there: 502 with why.
        let closed = format!("http://127.0.0.1:{}", free_tcp_port());
        for (name, password, address, why) in [
            (
                "r2-u02.lab.example",
                "Not-the-pw-42",
                emulator.base.as_str(),
                "credentials were refused",
            ),
            ("r2-u03.lab.example", PASSWORD, closed.as_str(), "127.0.0.1"),
        ] {
            let (status, body) = call(
                reqwest::Method::POST,
                format!("{base}/api/v2/nodes"),
                Some(json!({"name": name, "bmc": bmc(password, address)})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            let started = Instant::now();
            let (status, body) = call(
                reqwest::Method::PUT,
                format!("{base}/api/v2/nodes/{name}/power"),
                Some(json!({"action": "cycle", "next_boot": "pxe"})),
            )
            .await;
            assert_eq!(status, 502, "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(why), "{body}");
            assert!(!message.contains("Not-the-pw-42"), "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no hang: {:?}",
                started.elapsed()
            );
        }
    }
);

on_both_databases!(
    an_install_whose_redfish_bmc_refuses_the_reboot_fails,
    |backend| async move {
        let emulator = Emulator::start(true, false).await;
        let cluster = format!(
            r#"
[[bootenv]]
name = "ubuntu-24.04-install"
kernel = "ubuntu-24.04/linux"
initrd = "ubuntu-24.04/initrd.gz"

[[node]]
name = "n1.lab.example"
alive = true
interfaces = [{{ mac = "52:54:00:ab:cd:01", ip = "127.0.96.11" }}]
bmc = {{ driver = "redfish", address = "{address}", username = "{USER}", password = "Stale-pw-0001" }}

[[deployment]]
name = "ubuntu"
commit = true
bindings = [{{ role = "provisioner-os-install", nodes = ["n1.lab.example"] }}]
"#,
            address = emulator.base
        );
        let (base, _db, _dir) = kiln(backend, Some(cluster)).await;
        common::report_inventory(&base, "n1.lab.example").await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let nr = loop {
            let (_, nrs) = call(
                reqwest::Method::GET,
                format!("{base}/api/v2/noderoles?node=n1.lab.example&role=provisioner-os-install"),
                None,
            )
            .await;
            if nrs[0]["state"] == "error" {
                break nrs[0].clone();
            }
            assert!(Instant::now() < deadline, "the install never failed: {nrs}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (_, detail) = call(
            reqwest::Method::GET,
            format!("{base}/api/v2/noderoles/{}", nr["id"]),
            None,
        )
        .await;
        let runlog = detail["runlog"].as_str().unwrap_or_default();
        assert!(
            runlog.contains("the reboot into the installer failed"),
            "{detail}"
        );
        assert!(runlog.contains("credentials were refused"), "{detail}");
        assert!(!runlog.contains("Stale-pw-0001"), "{detail}");
        assert_eq!(emulator.system(SYSTEM).await["PowerState"], "Off");
    }
);
