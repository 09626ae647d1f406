//! The hardware inventory a machine reports from its discovery image:
//! `PUT /api/v2/nodes/{key}/inventory` with the node's own token or the
//! admin's, fields checked by path, the stored report in the node view and
//! its filters, the boot templates that read it, and the inventory role
//! that waits for it — on both databases.

mod common;

use std::time::Duration;

use common::{spawn_app_with, TestApp};
use kiln::db::bootenvs::{self, BootenvSpec};
use serde_json::{json, Value};

/// A report as the discovery image sends it.
fn report(memory_mib: u64, disks: &[(&str, u64)], mac: &str) -> Value {
    let disks: Vec<Value> = disks
        .iter()
        .enumerate()
        .map(|(i, (name, size))| {
            json!({"name": name, "size_bytes": size, "model": "QEMU HARDDISK",
                   "serial": format!("QM0000{i}"), "rotational": true})
        })
        .collect();
    json!({
        "cpus": {"count": 2, "model": "QEMU Virtual CPU version 2.5+"},
        "memory_mib": memory_mib,
        "disks": disks,
        "nics": [{"name": "eth0", "mac": mac, "driver": "e1000", "speed_mbps": 1000,
                  "lldp": {"chassis": "sw1", "port": "ge-0/0/3"}}],
        "system": {"vendor": "QEMU", "product": "Standard PC (i440FX + PIIX, 1996)", "serial": ""},
        "bmc": {"address": "10.0.0.5"}
    })
}

/// Creates a node; returns its one-time token.
async fn create_node(app: &TestApp, name: &str, mac: &str, ip: &str, alive: bool) -> String {
    let resp = app
        .post("/api/v2/nodes")
        .json(&json!({"name": name, "alive": alive, "interfaces": [{"mac": mac, "ip": ip}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// `PUT .../inventory` with `token`: status and body.
async fn put_inventory(app: &TestApp, node: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .client
        .put(format!("{}/api/v2/nodes/{node}/inventory", app.address))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let resp = app.get(path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

on_both_databases!(
    reports_are_checked_kept_shown_and_filtered,
    |backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let t1 = create_node(&app, "n1", "52:54:00:00:01:01", "10.9.0.11", false).await;
        let t2 = create_node(&app, "n2", "52:54:00:00:01:02", "10.9.0.12", false).await;
        let _t3 = create_node(&app, "n3", "52:54:00:00:01:03", "10.9.0.13", false).await;

        // No report yet: null.
        let n1 = get_json(&app, "/api/v2/nodes/n1").await;
        assert_eq!(n1["inventory"], Value::Null);

        // The node's own token: 200 with the stored report, MAC normalised.
        let body = report(
            2048,
            &[("vda", 10 << 30), ("vdb", 1 << 30)],
            "52-54-00-AA-BB-01",
        );
        let (status, stored) = put_inventory(&app, "n1", &t1, &body).await;
        assert_eq!(status, 200, "{stored}");
        assert_eq!(stored["nics"][0]["mac"], "52:54:00:aa:bb:01");
        assert_eq!(stored["disks"][1]["size_bytes"], 1u64 << 30);
        assert!(stored["received_at"].is_string(), "{stored}");

        // Shown in the node, as stored.
        let n1 = get_json(&app, "/api/v2/nodes/n1").await;
        assert_eq!(stored["node"], "n1", "the node it is kept on: {stored}");
        let mut kept = stored.clone();
        kept.as_object_mut().unwrap().remove("node");
        assert_eq!(n1["inventory"], kept);
        assert_eq!(n1["inventory"]["bmc"]["address"], "10.0.0.5");
        assert_eq!(n1["inventory"]["nics"][0]["lldp"]["port"], "ge-0/0/3");

        // Another node's token, a made-up one, or none: refused, nothing kept.
        let (status, _) =
            put_inventory(&app, "n1", &t2, &report(1, &[], "52:54:00:00:00:09")).await;
        assert_eq!(status, 401, "n2's token is not n1's");
        let (status, _) = put_inventory(&app, "n1", "made-up", &body).await;
        assert_eq!(status, 401);
        let resp = app
            .client
            .put(format!("{}/api/v2/nodes/n1/inventory", app.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(get_json(&app, "/api/v2/nodes/n1").await["inventory"], kept);

        // The admin token: 200. A second report replaces the first.
        let (status, admin_stored) = put_inventory(
            &app,
            "n2",
            common::TEST_TOKEN,
            &report(8192, &[("sda", 500 << 30)], "52:54:00:00:01:02"),
        )
        .await;
        assert_eq!(status, 200, "{admin_stored}");
        let (status, _) = put_inventory(
            &app,
            "n2",
            &t2,
            &report(
                16384,
                &[("sda", 1 << 40), ("sdb", 1 << 40), ("sdc", 1 << 40)],
                "52:54:00:00:01:02",
            ),
        )
        .await;
        assert_eq!(status, 200);
        let n2 = get_json(&app, "/api/v2/nodes/n2").await;
        assert_eq!(n2["inventory"]["memory_mib"], 16384);
        assert_eq!(n2["inventory"]["disks"].as_array().unwrap().len(), 3);

        // Bad reports: 422 naming the field by its path; nothing kept.
        let good = report(
            4096,
            &[("vda", 1 << 30), ("vdb", 1 << 30)],
            "52:54:00:00:01:01",
        );
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut v = good.clone();
        v["disks"][1]["size_bytes"] = json!(-5);
        cases.push((v, "disks[1].size_bytes"));
        let mut v = good.clone();
        v["nics"][0]["mac"] = json!("52:54:00:zz:00:01");
        cases.push((v, "nics[0].mac"));
        let mut v = good.clone();
        v["memory_mib"] = json!(-1);
        cases.push((v, "memory_mib"));
        let mut v = good.clone();
        v["cpus"]["count"] = json!("four");
        cases.push((v, "cpus.count"));
        let mut v = good.clone();
        v["nics"][0]["speed_mbps"] = json!(-100);
        cases.push((v, "nics[0].speed_mbps"));
        let mut v = good.clone();
        v["disks"][0]["rotational"] = json!("yes");
        cases.push((v, "disks[0].rotational"));
        let mut v = good.clone();
        v["disks"][0]["serial"] = json!("s".repeat(1000));
        cases.push((v, "disks[0].serial"));
        let mut v = good.clone();
        v["disks"][0]["name"] = json!("");
        cases.push((v, "disks[0].name"));
        let mut v = good.clone();
        v["system"]["asset_tag"] = json!("x");
        cases.push((v, "system.asset_tag"));
        let mut v = good.clone();
        v["gpus"] = json!([]);
        cases.push((v, "gpus"));
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove("nics");
        cases.push((v, "nics"));
        let mut v = good.clone();
        v["nics"][0]["lldp"] = json!({"chassis": "sw1"});
        cases.push((v, "nics[0].lldp.port"));
        let mut v = good.clone();
        v["disks"] = json!(vec![good["disks"][0].clone(); 257]);
        cases.push((v, "disks"));
        let mut v = good.clone();
        v["bmc"] = json!({"address": ""});
        cases.push((v, "bmc.address"));
        for (body, field) in cases {
            let (status, answer) = put_inventory(&app, "n1", &t1, &body).await;
            assert_eq!(status, 422, "{field}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
        assert_eq!(get_json(&app, "/api/v2/nodes/n1").await["inventory"], kept);
        let (status, answer) = put_inventory(&app, "ghost", common::TEST_TOKEN, &good).await;
        assert_eq!(status, 404, "{answer}");

        // Filters: n1 has 2048 MiB and 2 disks, n2 16384 MiB and 3, n3 nothing.
        let all = get_json(&app, "/api/v2/nodes").await;
        assert_eq!(names(&all), ["n1", "n2", "n3"]);
        let big = get_json(&app, "/api/v2/nodes?min_memory_mib=4096").await;
        assert_eq!(names(&big), ["n2"]);
        assert_eq!(big[0]["inventory"]["memory_mib"], 16384);
        let two_disks = get_json(&app, "/api/v2/nodes?min_disks=2").await;
        assert_eq!(names(&two_disks), ["n1", "n2"]);
        let both = get_json(&app, "/api/v2/nodes?min_disks=3&min_memory_mib=2048").await;
        assert_eq!(names(&both), ["n2"]);
        let reported = get_json(&app, "/api/v2/nodes?min_disks=0").await;
        assert_eq!(
            names(&reported),
            ["n1", "n2"],
            "min_disks=0: every node that reported"
        );
        let none = get_json(&app, "/api/v2/nodes?min_memory_mib=100000").await;
        assert_eq!(names(&none), Vec::<String>::new());
        let resp = app.get("/api/v2/nodes?min_disks=-1").send().await.unwrap();
        assert_eq!(resp.status(), 400, "not a count, as for every list's query");

        // A deleted node takes its inventory with it.
        let resp = app.delete("/api/v2/nodes/n2").send().await.unwrap();
        assert_eq!(resp.status(), 204);
        let big = get_json(&app, "/api/v2/nodes?min_memory_mib=4096").await;
        assert_eq!(names(&big), Vec::<String>::new());
    }
);

on_both_databases!(templates_read_the_inventory, |backend| async move {
    let app = spawn_app_with(backend, |_| {}).await;
    bootenvs::upsert(
        &app.db,
        &BootenvSpec {
            name: "debian-12-install".into(),
            kind: bootenvs::BootenvKind::Ipxe,
            kernel: "debian-12/linux".into(),
            initrd: "debian-12/initrd.gz".into(),
            append: "kiln.node={{node_name}} disk=/dev/{{inventory.disks.0.name}}".into(),
            template: "d-i partman-auto/disk string /dev/{{inventory.disks.0.name}}\n# {{inventory.memory_mib}} MiB\n\
{% for i in interfaces %}# nic {{ i.mac }} {{ i.ip }}\n{% endfor %}\
{% for d in inventory.disks if not d.rotational %}# ssd {{ d.name }}\n{% endfor %}".into(),
            description: String::new(),
        },
    )
    .await
    .unwrap();
    create_node(&app, "n1", "52:54:00:00:02:01", "127.0.0.41", false).await;
    let resp = app
        .put("/api/v2/nodes/n1")
        .json(&json!({"bootenv": "debian-12-install"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let machine = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 41]))
        .build()
        .unwrap();
    let fetch = |path: &str| {
        let request = machine.get(format!("{}{path}", app.address));
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    // No inventory yet: the path leads nowhere, an error naming it.
    let (status, answer) = fetch("/boot/answers/52:54:00:00:02:01").await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("inventory.disks.0.name"), "{answer}");

    // (The boot routes just issued this boot's token; the admin reports.)
    let (status, body) = put_inventory(
        &app,
        "n1",
        common::TEST_TOKEN,
        &report(3072, &[("nvme0n1", 1 << 40)], "52:54:00:00:02:01"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, answer) = fetch("/boot/answers/52:54:00:00:02:01").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        "d-i partman-auto/disk string /dev/nvme0n1\n# 3072 MiB\n\
         # nic 52:54:00:00:02:01 127.0.0.41\n"
    );
    let (status, script) = fetch("/boot/52:54:00:00:02:01.ipxe").await;
    assert_eq!(status, 200, "{script}");
    assert!(
        script.contains("kiln.node=n1 disk=/dev/nvme0n1"),
        "{script}"
    );
});

/// The inventory noderole of `node`: its id.
async fn inventory_noderole(app: &TestApp, node: &str) -> i64 {
    let list = get_json(
        app,
        &format!("/api/v2/noderoles?node={node}&role=inventory"),
    )
    .await;
    list[0]["id"].as_i64().unwrap_or_else(|| panic!("{list}"))
}

async fn settled(app: &TestApp) {
    tokio::time::timeout(Duration::from_secs(60), app.state.orchestrator.settled())
        .await
        .expect("kiln settles")
        .unwrap();
}

on_both_databases!(
    the_inventory_role_waits_for_a_fresh_report,
    |backend| async move {
        let app = spawn_app_with(backend, |s| {
            s.cluster.builtin_roles = true;
            s.inventory.timeout_ms = 300;
        })
        .await;
        // Alive, never reporting: the role fails after the timeout, saying why.
        let token = create_node(&app, "n1", "52:54:00:00:03:01", "10.9.3.11", true).await;
        settled(&app).await;
        let id = inventory_noderole(&app, "n1").await;
        let nr = get_json(&app, &format!("/api/v2/noderoles/{id}")).await;
        assert_eq!(nr["state"], "error", "{nr}");
        let runlog = nr["runlog"].as_str().unwrap();
        assert!(
            runlog.contains("no inventory from n1 within 300ms (it never reported an inventory)"),
            "{runlog}"
        );
        assert!(
            runlog.contains("PUT /api/v2/nodes/n1/inventory"),
            "{runlog}"
        );

        // The machine reports; the retried role finds it and succeeds.
        let (status, body) = put_inventory(
            &app,
            "n1",
            &token,
            &report(1024, &[("vda", 1 << 30)], "52:54:00:00:03:01"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let resp = app
            .put(&format!("/api/v2/noderoles/{id}/retry"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        settled(&app).await;
        let nr = get_json(&app, &format!("/api/v2/noderoles/{id}")).await;
        assert_eq!(nr["state"], "active", "{nr}");
        let runlog = nr["runlog"].as_str().unwrap();
        assert!(
            runlog.contains("inventory of n1 received at")
                && runlog.contains("1024 MiB memory, 1 disks, 1 nics"),
            "{runlog}"
        );

        // Down and back alive: the report is from before, so the re-run fails.
        for alive in [false, true] {
            let resp = app
                .put("/api/v2/nodes/n1")
                .json(&json!({ "alive": alive }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        settled(&app).await;
        let nr = get_json(&app, &format!("/api/v2/noderoles/{id}")).await;
        assert_eq!(nr["state"], "error", "{nr}");
        let runlog = nr["runlog"].as_str().unwrap();
        assert!(
            runlog.contains("its last inventory is from")
                && runlog.contains("before it came back alive at"),
            "{runlog}"
        );
    }
);

on_both_databases!(a_report_during_the_wait_ends_it, |backend| async move {
    let app = spawn_app_with(backend, |s| {
        s.cluster.builtin_roles = true;
        s.inventory.timeout_ms = 600_000;
    })
    .await;
    let token = create_node(&app, "n1", "52:54:00:00:04:01", "10.9.4.11", true).await;
    // The role is waiting once its noderole is in transition.
    let mut events = app.state.orchestrator.stream();
    let id = inventory_noderole(&app, "n1").await;
    let nr = get_json(&app, &format!("/api/v2/noderoles/{id}")).await;
    if nr["state"] != "transition" {
        loop {
            match events.recv().await.unwrap() {
                kiln::domain::Fact::NoderoleStateChanged(c)
                    if c.noderole_id == id && c.to == kiln::domain::NoderoleState::Transition =>
                {
                    break
                }
                _ => {}
            }
        }
    }
    let (status, body) = put_inventory(
        &app,
        "n1",
        &token,
        &report(1024, &[("vda", 1 << 30)], "52:54:00:00:04:01"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Well within the ten-minute timeout.
    settled(&app).await;
    let nr = get_json(&app, &format!("/api/v2/noderoles/{id}")).await;
    assert_eq!(nr["state"], "active", "{nr}");
});

on_both_databases!(
    a_machine_that_never_reports_holds_no_slot_while_its_role_waits,
    |backend| async move {
        // One slot in the whole system, and a silent machine.
        let app = spawn_app_with(backend, |s| {
            s.cluster.builtin_roles = true;
            s.scheduler.max_concurrent_runs = 1;
            s.inventory.timeout_ms = 600_000;
        })
        .await;
        let silent = create_node(&app, "silent", "52:54:00:00:06:01", "10.9.6.11", true).await;
        let silent_role = inventory_noderole(&app, "silent").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let scheduler = get_json(&app, "/api/v2/scheduler").await;
            if scheduler["parked"] == 1 {
                assert_eq!(scheduler["in_use"], 0, "{scheduler}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the wait never parked: {scheduler}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Another machine's roles run meanwhile, through the one slot.
        let token = create_node(&app, "busy", "52:54:00:00:06:02", "10.9.6.12", true).await;
        let (status, body) =
            put_inventory(&app, "busy", &token, &report(512, &[], "52:54:00:00:06:02")).await;
        assert_eq!(status, 200, "{body}");
        loop {
            let nrs = get_json(&app, "/api/v2/noderoles?node=busy").await;
            let states: Vec<&str> = nrs
                .as_array()
                .unwrap()
                .iter()
                .map(|nr| nr["state"].as_str().unwrap())
                .collect();
            if !states.is_empty() && states.iter().all(|s| *s == "active") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "busy's roles waited for the silent machine's slot: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let nr = get_json(&app, &format!("/api/v2/noderoles/{silent_role}")).await;
        assert_eq!(nr["state"], "transition", "still waiting: {nr}");

        // Its report ends the wait: the run takes a slot back and finishes.
        let (status, body) = put_inventory(
            &app,
            "silent",
            &silent,
            &report(256, &[], "52:54:00:00:06:01"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        settled(&app).await;
        let nr = get_json(&app, &format!("/api/v2/noderoles/{silent_role}")).await;
        assert_eq!(nr["state"], "active", "{nr}");
        let scheduler = get_json(&app, "/api/v2/scheduler").await;
        assert_eq!(
            (scheduler["parked"].as_u64(), scheduler["in_use"].as_u64()),
            (Some(0), Some(0)),
            "{scheduler}"
        );
    }
);

on_both_databases!(the_collector_reports_this_machine, |backend| async move {
    // The discovery image's collector, under the busybox it runs on there,
    // on this machine's own /proc and /sys.
    let out = std::process::Command::new("busybox")
        .args(["sh", "scripts/discovery/kiln-inventory"])
        .output()
        .expect("busybox (Debian busybox-static, installed by scripts/test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let app = spawn_app_with(backend, |_| {}).await;
    create_node(&app, "here", "52:54:00:00:05:01", "10.9.5.11", false).await;
    let (status, stored) = put_inventory(&app, "here", common::TEST_TOKEN, &document).await;
    assert_eq!(status, 200, "{stored}\n{document}");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert_eq!(stored["memory_mib"], kib / 1024);
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(stored["cpus"]["count"], cpus);
    for disk in stored["disks"].as_array().unwrap() {
        let name = disk["name"].as_str().unwrap();
        let sectors: u64 = std::fs::read_to_string(format!("/sys/block/{name}/size"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(disk["size_bytes"], sectors * 512, "{disk}");
        assert!(
            !name.starts_with("loop") && !name.starts_with("ram"),
            "{disk}"
        );
    }
    for nic in stored["nics"].as_array().unwrap() {
        let name = nic["name"].as_str().unwrap();
        let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).unwrap();
        assert_eq!(nic["mac"], mac.trim(), "{nic}");
    }
});

on_both_databases!(jigs_get_the_inventory_in_their_data, |backend| async move {
    use common::orchestration::{bind_all, define_roles, role, settle};
    use kiln::db::roles::JigKind;
    use kiln::db::{deployments, noderoles, Key};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("disk.sh");
    // The script's data as its wall, so the test reads what it was given.
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '%s' \"$KILN_DATA\" > \"$KILN_WALL_FILE\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let scripts_dir = dir.path().to_path_buf();
    let app = spawn_app_with(backend, move |s| s.jigs.scripts_dir = scripts_dir).await;
    let mut disk = role("disk-setup", JigKind::Script, &[]);
    disk.scripts = vec!["disk.sh".into()];
    disk.data = json!({"fs": "ext4"});
    define_roles(&app.db, &[disk]).await;
    create_node(&app, "n1", "52:54:00:00:06:01", "10.9.6.11", true).await;
    let (status, _) = put_inventory(
        &app,
        "n1",
        common::TEST_TOKEN,
        &report(2048, &[("sda", 1 << 40)], "52:54:00:00:06:01"),
    )
    .await;
    assert_eq!(status, 200);
    let orch = &app.state.orchestrator;
    deployments::create(&app.db, "d", None, "").await.unwrap();
    bind_all(orch, "d", "disk-setup", &["n1"]).await;
    orch.commit_deployment(&Key::Name("d".into()))
        .await
        .unwrap();
    settle(orch, Duration::from_secs(60)).await;
    let id = noderole_of(&app, "n1", "disk-setup").await;
    let nr = noderoles::get(&app.db, id).await.unwrap();
    assert_eq!(nr.wall["fs"], "ext4", "{}", nr.runlog);
    assert_eq!(
        nr.wall["inventory"]["disks"][0]["name"], "sda",
        "{}",
        nr.wall
    );
    assert_eq!(nr.wall["inventory"]["memory_mib"], 2048, "{}", nr.wall);
});

/// The id of `node`'s noderole of `role`.
async fn noderole_of(app: &TestApp, node: &str, role: &str) -> i64 {
    let list = get_json(app, &format!("/api/v2/noderoles?node={node}&role={role}")).await;
    list[0]["id"].as_i64().unwrap_or_else(|| panic!("{list}"))
}
