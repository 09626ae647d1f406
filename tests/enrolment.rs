//! Enrolment by BMC on both databases: a node defined by its BMC alone
//! becomes the machine that boots after kiln powered it on, once that
//! machine's discovery image reports the BMC's address (one node, never
//! two, its token and liveness moved over, its discovery roles run); a
//! machine that was there before the power-on, a node with bindings of its
//! own, or a BMC node that already has interfaces is never merged; a
//! reported address fills a BMC's empty one.
//!
//! The "BMC" is the command driver with a script standing in for a PDU;
//! the discovered machines are registered through the API as DHCP
//! discovery registers them (bootenv `sledgehammer`, one leased interface).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestApp;
use kiln::domain::Fact;
use serde_json::{json, Value};

const KEY: &str = "enrolment-test-key-of-length";
const BMC_ADDRESS: &str = "10.0.0.5";

/// A power script that accepts everything and says the machine is on.
fn pdu(dir: &Path) -> PathBuf {
    let script = dir.join("pdu.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$KILN_POWER_ACTION $KILN_NODE\" >> {}/actions.log\n\
             case \"$KILN_POWER_ACTION\" in status) echo on ;; esac\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

async fn start(backend: kiln::db::Backend, dir: &Path) -> TestApp {
    let script = pdu(dir);
    common::spawn_app_with(backend, |s| {
        s.bmc.secret_key = KEY.into();
        s.bmc.poll_interval_ms = 0;
        s.power.command = script.display().to_string();
        s.cluster.builtin_roles = true;
    })
    .await
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A machine DHCP discovery registered: its name, and its token.
async fn discovered(app: &TestApp, mac: &str, ip: &str) -> (String, String) {
    let name = format!("d{}.lab.example", mac.replace(':', ""));
    let (status, body) = send(app.post("/api/v2/nodes").json(&json!({
        "name": name, "alive": true, "bootenv": "sledgehammer",
        "interfaces": [{"mac": mac, "ip": ip}]})))
    .await;
    assert_eq!(status, 201, "{body}");
    (name, body["token"].as_str().unwrap().to_string())
}

/// What the discovery image reports, with the BMC address it read.
fn report(mac: &str, bmc: &str) -> Value {
    json!({
        "cpus": {"count": 4, "model": "Xeon"},
        "memory_mib": 65536,
        "disks": [{"name": "sda", "size_bytes": 480_103_981_056u64, "model": "SSD", "serial": "S1", "rotational": false}],
        "nics": [{"name": "eno1", "mac": mac, "driver": "ixgbe", "speed_mbps": 10000}],
        "system": {"vendor": "Dell Inc.", "product": "PowerEdge R650", "serial": "7XK2Q3"},
        "bmc": {"address": bmc}
    })
}

async fn put_inventory(app: &TestApp, node: &str, token: &str, body: &Value) -> (u16, Value) {
    send(
        app.client
            .put(format!("{}/api/v2/nodes/{node}/inventory", app.address))
            .bearer_auth(token)
            .json(body),
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    send(app.get(path)).await
}

async fn settled(app: &TestApp) {
    common::orchestration::settle(&app.state.orchestrator, Duration::from_secs(60)).await;
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// An admin node running the DHCP database role in `system`; returns
/// that noderole's id.
async fn admin_with_dhcp_database(app: &TestApp) -> i64 {
    let (status, body) = send(app.post("/api/v2/nodes").json(&json!({
        "name": "admin.lab.example", "admin": true, "alive": true,
        "interfaces": [{"mac": "52:54:00:07:ff:01", "ip": "10.9.7.1"}]})))
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, nr) = send(
        app.post("/api/v2/noderoles").json(&json!({
        "node": "admin.lab.example", "role": "provisioner-dhcp-database", "deployment": "system"})),
    )
    .await;
    assert_eq!(status, 201, "{nr}");
    let id = nr["id"].as_i64().unwrap();
    // With what it requires, bound along with it.
    let (status, body) = send(
        app.put("/api/v2/deployments/system/commit")
            .json(&json!({})),
    )
    .await;
    assert!(status < 300, "{body}");
    settled(app).await;
    id
}

/// The node defined by its BMC alone.
async fn define_by_bmc(app: &TestApp, name: &str) {
    let (status, body) = send(app.post("/api/v2/nodes").json(&json!({
        "name": name,
        "bmc": {"driver": "command", "address": BMC_ADDRESS, "username": "ops", "password": "pdu-secret-1"}})))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["interfaces"], json!([]), "{body}");
}

on_both_databases!(
    the_machine_that_boots_after_power_on_becomes_the_node_its_bmc_defines,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let app = start(backend, dir.path()).await;
        let rack = "r1-u07.lab.example";
        let dhcp_database = admin_with_dhcp_database(&app).await;
        define_by_bmc(&app, rack).await;

        // A machine already on the network reads the same address before
        // kiln ever powered the node on: it is not the node's machine.
        let (early, early_token) = discovered(&app, "52:54:00:07:00:01", "10.9.7.101").await;
        let (status, kept) = put_inventory(
            &app,
            &early,
            &early_token,
            &report("52:54:00:07:00:01", BMC_ADDRESS),
        )
        .await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!(kept["node"], early, "{kept}");
        assert_eq!(
            get(&app, &format!("/api/v2/nodes/{rack}")).await.1["interfaces"],
            json!([])
        );

        // `kiln power NODE on`: PXE once, then on.
        let (status, power) = send(
            app.put(&format!("/api/v2/nodes/{rack}/power"))
                .json(&json!({"action": "on", "next_boot": "pxe"})),
        )
        .await;
        assert_eq!(status, 200, "{power}");
        let actions = std::fs::read_to_string(dir.path().join("actions.log")).unwrap();
        assert!(
            actions.contains(&format!("boot_pxe {rack}\non {rack}")),
            "{actions}"
        );

        // The machine that then boots is registered, and reports its BMC.
        let mac = "52:54:00:07:00:02";
        let (booted, token) = discovered(&app, mac, "10.9.7.102").await;
        let mut facts = app.state.orchestrator.stream();
        let (status, kept) = put_inventory(&app, &booted, &token, &report(mac, BMC_ADDRESS)).await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!(
            kept["node"], rack,
            "the report names the node it is kept on: {kept}"
        );

        // One node for the machine: the operator's, with the machine's
        // interface, liveness and inventory; the discovered one is gone.
        let (status, _) = get(&app, &format!("/api/v2/nodes/{booted}")).await;
        assert_eq!(status, 404);
        let (_, node) = get(&app, &format!("/api/v2/nodes/{rack}")).await;
        assert_eq!(node["interfaces"][0]["mac"], mac, "{node}");
        assert_eq!(node["interfaces"][0]["ip"], "10.9.7.102", "{node}");
        assert_eq!(node["alive"], true, "{node}");
        assert_eq!(node["inventory"]["system"]["serial"], "7XK2Q3", "{node}");
        assert_eq!(node["bmc"]["password_set"], true, "{node}");
        let (_, all) = get(&app, "/api/v2/nodes").await;
        assert_eq!(
            names(&all),
            vec![
                "admin.lab.example".to_string(),
                early.clone(),
                rack.to_string()
            ]
        );

        // The fact says what happened, after the commit.
        let enrolled = loop {
            match tokio::time::timeout(Duration::from_secs(10), facts.recv()).await {
                Ok(Ok(Fact::NodeEnrolled(e))) => break e,
                Ok(Ok(_)) => {}
                other => panic!("no NodeEnrolled fact: {other:?}"),
            }
        };
        assert_eq!(
            (enrolled.node.as_str(), enrolled.merged.as_str()),
            (rack, booted.as_str())
        );

        // Its discovery roles run on the operator's node, the report counts.
        settled(&app).await;
        let (_, nrs) = get(&app, &format!("/api/v2/noderoles?node={rack}")).await;
        let states: Vec<(String, String)> = nrs
            .as_array()
            .unwrap()
            .iter()
            .map(|nr| {
                (
                    nr["role"].as_str().unwrap().into(),
                    nr["state"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            states.iter().any(|(role, _)| role == "inventory")
                && states.iter().all(|(_, state)| state == "active"),
            "{states:?}"
        );

        // The machine's token moved with it: its later calls use the name
        // the report returned.
        let (status, body) = put_inventory(&app, rack, &token, &report(mac, BMC_ADDRESS)).await;
        assert_eq!(status, 200, "{body}");
        // The DHCP database follows: the machine's entry is the node's now.
        let (_, nr) = get(&app, &format!("/api/v2/noderoles/{dhcp_database}")).await;
        let bootenvs = &nr["committed_data"]["bootenvs"];
        assert_eq!(bootenvs[rack], "sledgehammer", "{nr}");
        assert!(bootenvs.get(&booted).is_none(), "{nr}");
        let (_, runs) = get(&app, "/api/v2/runs?node=admin.lab.example&limit=1000").await;
        assert!(
            runs.as_array()
                .unwrap()
                .iter()
                .any(|r| r["reason"] == "node-enrolled" && r["state"] == "succeeded"),
            "the DHCP database re-ran for the enrolment: {runs}"
        );
    }
);

on_both_databases!(
    a_report_never_merges_a_node_that_is_more_than_discovered,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let app = start(backend, dir.path()).await;
        define_by_bmc(&app, "r1-u08.lab.example").await;
        let (status, _) = send(
            app.put("/api/v2/nodes/r1-u08.lab.example/power")
                .json(&json!({"action": "on"})),
        )
        .await;
        assert_eq!(status, 200);

        // A discovered machine the operator already bound a role to.
        let (bound, token) = discovered(&app, "52:54:00:08:00:01", "10.9.8.101").await;
        let (status, body) = send(
            app.post("/api/v2/deployments")
                .json(&json!({"name": "burnin"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = send(app.post("/api/v2/noderoles").json(&json!({
            "node": bound, "role": "kiln-managed-node", "deployment": "burnin"})))
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, kept) = put_inventory(
            &app,
            &bound,
            &token,
            &report("52:54:00:08:00:01", BMC_ADDRESS),
        )
        .await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!(kept["node"], bound, "{kept}");
        let (status, _) = get(&app, &format!("/api/v2/nodes/{bound}")).await;
        assert_eq!(status, 200);

        // A node that has interfaces already is another machine.
        let (status, body) = send(app.post("/api/v2/nodes").json(&json!({
            "name": "r1-u09.lab.example",
            "interfaces": [{"mac": "52:54:00:09:00:09", "ip": "10.9.9.9"}],
            "bmc": {"driver": "command", "address": "10.0.0.9"}})))
        .await;
        assert_eq!(status, 201, "{body}");
        send(
            app.put("/api/v2/nodes/r1-u09.lab.example/power")
                .json(&json!({"action": "on"})),
        )
        .await;
        let (other, token) = discovered(&app, "52:54:00:09:00:01", "10.9.9.101").await;
        let (status, kept) = put_inventory(
            &app,
            &other,
            &token,
            &report("52:54:00:09:00:01", "10.0.0.9"),
        )
        .await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!(kept["node"], other, "{kept}");
        let (_, all) = get(&app, "/api/v2/nodes").await;
        assert_eq!(all.as_array().unwrap().len(), 4, "{all}");
    }
);

on_both_databases!(
    a_reported_address_fills_an_empty_one_and_only_that,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let app = start(backend, dir.path()).await;
        for (name, mac, address) in [
            ("n1.lab.example", "52:54:00:10:00:01", ""),
            ("n2.lab.example", "52:54:00:10:00:02", "10.0.0.22"),
        ] {
            let (status, body) = send(app.post("/api/v2/nodes").json(&json!({
                "name": name, "alive": true,
                "interfaces": [{"mac": mac}],
                "bmc": {"driver": "ipmi", "address": address, "username": "admin", "password": "calvin-1"}})))
            .await;
            assert_eq!(status, 201, "{body}");
            let token = body["token"].as_str().unwrap().to_string();
            let (status, kept) = put_inventory(&app, name, &token, &report(mac, "10.0.0.99")).await;
            assert_eq!(status, 200, "{kept}");
        }
        let (_, n1) = get(&app, "/api/v2/nodes/n1.lab.example").await;
        assert_eq!(n1["bmc"]["address"], "10.0.0.99", "{n1}");
        assert_eq!(n1["bmc"]["password_set"], true, "{n1}");
        let (_, n2) = get(&app, "/api/v2/nodes/n2.lab.example").await;
        assert_eq!(
            n2["bmc"]["address"], "10.0.0.22",
            "the operator's address stays: {n2}"
        );
    }
);
