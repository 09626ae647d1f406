//! Every benchmark at a tiny size, so none rots. Numbers are not asserted
//! (timed assertions are flaky on shared machines); that they are produced is.

use std::process::Command;

fn run_bench(args: &[&str]) -> String {
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
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["name"], "anneal");
    assert!(report["ratio"].as_f64().unwrap() > 0.0, "{report}");
    stdout
}

fn assert_result_line(stdout: &str) {
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("RESULT anneal ratio="), "{stdout}");
    assert!(last.ends_with("target=>=0.5"), "{stdout}");
}

#[test]
fn anneal_bench_runs_on_sqlite() {
    assert_result_line(&run_bench(&[
        "anneal", "--nodes", "5", "--roles", "2", "--sqlite",
    ]));
}

#[test]
fn anneal_bench_runs_on_postgres() {
    let server = std::env::var("KILN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    assert_result_line(&run_bench(&[
        "anneal",
        "--nodes",
        "5",
        "--roles",
        "2",
        "--postgres",
        &server,
    ]));
}
