//! Every benchmark at a tiny size, so none rots. Numbers are not asserted
//! (timed assertions are flaky on shared machines); that each one runs,
//! prints its table and its RESULT line, and writes its JSON is.

use std::process::Command;

/// Runs `kiln bench <args> --json F`; returns stdout and the JSON report.
fn run_bench(args: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(dir.path())
        .args(["bench"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .env("KILN_LOG__FILTER", "warn")
        .output()
        .expect("run kiln bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (stdout, report)
}

/// The report is named `name`, has a positive ratio, and stdout ends with
/// `RESULT <name> ratio=<x> target=<target>` carrying the same ratio.
fn assert_result(name: &str, target: &str, (stdout, report): (String, serde_json::Value)) {
    assert_eq!(report["name"], name, "{report}");
    let ratio = report["ratio"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "{report}");
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("RESULT {name} ratio={ratio:.3} target={target}"),
        "{stdout}"
    );
}

fn postgres_server() -> String {
    std::env::var("KILN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[test]
fn anneal_bench_runs_on_sqlite() {
    let out = run_bench(&["anneal", "--nodes", "5", "--roles", "2", "--sqlite"]);
    assert_result("anneal", ">=0.5", out);
}

#[test]
fn anneal_bench_runs_on_postgres() {
    let server = postgres_server();
    let out = run_bench(&[
        "anneal",
        "--nodes",
        "5",
        "--roles",
        "2",
        "--postgres",
        &server,
    ]);
    assert_result("anneal", ">=0.5", out);
}

#[test]
fn scale_bench_runs() {
    let out = run_bench(&["scale", "--sizes", "3,6", "--roles", "2", "--sqlite"]);
    assert_eq!(out.1["rows"].as_array().unwrap().len(), 2, "{}", out.1);
    assert_result("scale", "<=1.3", out);
}

#[test]
fn memory_bench_counts_its_actors() {
    let out = run_bench(&["memory", "--nodes", "200", "--sqlite"]);
    assert_eq!(out.1["rows"][1]["values"][1][1], "200", "{}", out.1);
    assert_result("memory", "<=1.0", out);
}

#[test]
fn api_bench_lists_the_same_nodes_both_ways() {
    let server = postgres_server();
    let out = run_bench(&[
        "api",
        "--nodes",
        "30",
        "--rounds",
        "1",
        "--postgres",
        &server,
    ]);
    assert_result("api", "<=3.0", out);
}

#[test]
fn seed_bench_brings_every_machine_back() {
    let out = run_bench(&[
        "seed",
        "--nodes",
        "4",
        "--reboot-delay-ms",
        "100",
        "--install-ms",
        "50",
        "--sqlite",
    ]);
    assert_result("seed", "none", out);
}

/// `bench/dhcp.sh` at a tiny load against this build of kiln: it makes and
/// removes its own namespaces, installs perfdhcp, dnsmasq and Kea when they
/// are missing, and every server must complete some exchanges.
#[test]
fn dhcp_bench_script_runs_all_three_servers() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("dhcp.json");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/dhcp.sh"))
        .args([
            "--quick",
            "--seconds",
            "1",
            "--rate",
            "200",
            "--clients",
            "500",
        ])
        .arg("--json")
        .arg(&json)
        .env("KILN_BIN", env!("CARGO_BIN_EXE_kiln"))
        .output()
        .expect("run bench/dhcp.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let servers: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["median"].as_f64().unwrap() > 0.0, "{report}");
            r["server"].as_str().unwrap()
        })
        .collect();
    assert_eq!(servers, ["kiln", "dnsmasq", "kea"], "{report}");
    assert_result("dhcp", ">=1.0", (stdout, report));
}
