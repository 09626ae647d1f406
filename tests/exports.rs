//! The real validators accept what kiln exports: `dhcpd -t` the ISC host
//! file inside a minimal dhcpd.conf, `dnsmasq --test` the hosts file, and
//! `named-checkzone` the forward zone, whose serial only grows.

mod common;

use std::process::Command;

use common::orchestration::{add_node, settle};
use common::spawn_app_with;
use kiln::provisioner::export;

fn tool(name: &str, package: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!("{name} is missing: install the Debian package {package} (scripts/test does)");
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run validator");
    assert!(
        out.status.success(),
        "{cmd:?} refused kiln's file:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

on_both_databases!(validators_accept_exports, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().to_path_buf();
    let app = spawn_app_with(backend, move |s| s.provisioner.export_dir = export_dir).await;
    for (i, name) in ["n1.lab.example", "n2.lab.example", "n3.lab.example"]
        .iter()
        .enumerate()
    {
        add_node(&app.state.orchestrator, name, i as u32 + 11, false).await;
    }
    settle(&app.state.orchestrator, std::time::Duration::from_secs(30)).await;
    let hosts = kiln::db::hosts::list(&app.db).await.unwrap();
    assert_eq!(hosts.len(), 3);

    let isc = dir.path().join("dhcpd-hosts.conf");
    assert!(
        export::write_if_changed(&isc, &export::isc_hosts(&hosts, "http://10.99.0.1:3000"))
            .unwrap()
    );
    assert!(
        !export::write_if_changed(&isc, &export::isc_hosts(&hosts, "http://10.99.0.1:3000"))
            .unwrap(),
        "unchanged content is not rewritten"
    );
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "authoritative;\nsubnet 10.99.0.0 netmask 255.255.255.0 {{\n  option routers 10.99.0.1;\n}}\ninclude \"{}\";\n",
            isc.display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new(tool("dhcpd", "isc-dhcp-server"))
            .args(["-t", "-4", "-cf"])
            .arg(&conf),
    );

    let hostsfile = dir.path().join("dnsmasq-hosts");
    export::write_if_changed(&hostsfile, &export::dnsmasq_hosts(&hosts)).unwrap();
    run_ok(
        Command::new(tool("dnsmasq", "dnsmasq-base"))
            .arg("--test")
            .arg("--dhcp-range=10.99.0.100,10.99.0.199")
            .arg(format!("--dhcp-hostsfile={}", hostsfile.display())),
    );
    let text = std::fs::read_to_string(&hostsfile).unwrap();
    assert!(text.contains("52:54:00:00:00:0b,10.99.0.12,n1"), "{text}");

    let zone = dir.path().join("db.lab.example");
    let first = export::forward_zone("lab.example", "10.99.0.1", &hosts, None);
    export::write_if_changed(&zone, &first).unwrap();
    run_ok(
        Command::new(tool("named-checkzone", "bind9-utils"))
            .arg("lab.example")
            .arg(&zone),
    );
    let reverse = export::reverse_zone("10.99.0.0/24", "lab.example", &hosts, None).unwrap();
    let rzone = dir.path().join("db.0.99.10.in-addr.arpa");
    export::write_if_changed(&rzone, &reverse).unwrap();
    run_ok(
        Command::new(tool("named-checkzone", "bind9-utils"))
            .arg("0.99.10.in-addr.arpa")
            .arg(&rzone),
    );
    assert!(reverse.contains("12 IN PTR n1.lab.example."), "{reverse}");
    let serial = export::zone_serial(&first).unwrap();
    let second = export::forward_zone("lab.example", "10.99.0.1", &hosts, Some(serial));
    assert!(
        export::zone_serial(&second).unwrap() > serial,
        "the serial only grows"
    );
    assert!(first.contains("n1 IN A 10.99.0.12"), "{first}");
});
