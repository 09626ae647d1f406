//! What machines fetch while they network-boot: iPXE scripts by bootenv,
//! answer files with working callback tokens, and files with HEAD and Range.
//! The node's address is on loopback (127.0.0.31) and the "machine" calls
//! from it, as the boot routes that carry a token require.

mod common;

use common::spawn_app_with;
use kiln::db::bootenvs::{self, BootenvSpec};
use serde_json::json;

on_both_databases!(scripts_follow_the_bootenv, |backend| async move {
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(files.path().join("debian-12")).unwrap();
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(files.path().join("debian-12/linux"), &kernel).unwrap();
    let files_dir = files.path().to_path_buf();
    let app = spawn_app_with(backend, move |s| s.provisioner.files_dir = files_dir).await;
    bootenvs::upsert(
        &app.db,
        &BootenvSpec {
            name: "debian-12-install".into(),
            kind: bootenvs::BootenvKind::Ipxe,
            kernel: "debian-12/linux".into(),
            initrd: "debian-12/initrd.gz".into(),
            append: "auto=true url={{answer_url}} kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}".into(),
            template: "d-i netcfg/hostname string {{node_name}}\n# callback {{api_url}}/api/v2/nodes/{{node_name}} {{node_token}}\n".into(),
            description: String::new(),
        },
    )
    .await
    .unwrap();
    let resp = app
        .post("/api/v2/nodes")
        .json(&json!({"name": "n1.lab.example", "interfaces": [{"mac": "52:54:00:00:00:01", "ip": "127.0.0.31"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let machine = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 31]))
        .build()
        .unwrap();
    let fetch = |path: String| {
        let client = machine.clone();
        let url = format!("{}{path}", app.address);
        async move {
            let resp = client.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    // Discovery for a node in sledgehammer and for machines kiln does not know.
    let (status, script) = fetch("/boot/52:54:00:00:00:01.ipxe".into()).await;
    assert_eq!(status, 200);
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains("kernel ") && script.contains("sledgehammer/vmlinuz"),
        "{script}"
    );
    let (status, encoded) = fetch("/boot/52%3A54%3A00%3A00%3A00%3A01.ipxe".into()).await;
    assert_eq!(status, 200, "iPXE percent-encodes the MAC: {encoded}");
    assert!(
        encoded.contains("kiln.node=n1.lab.example") && encoded.contains("sledgehammer/vmlinuz"),
        "{encoded}"
    );
    let (_, unknown) = fetch("/boot/52-54-00-ff-ff-ff.ipxe".into()).await;
    assert!(unknown.contains("sledgehammer/vmlinuz"), "{unknown}");
    let (status, _) = fetch("/boot/not-a-mac.ipxe".into()).await;
    assert_eq!(status, 400);

    // The installer: kernel, initrd, rendered arguments with a working token.
    app.put("/api/v2/nodes/n1.lab.example")
        .json(&json!({"bootenv": "debian-12-install"}))
        .send()
        .await
        .unwrap();
    let (_, script) = fetch("/boot/52:54:00:00:00:01.ipxe".into()).await;
    assert!(
        script.contains("kernel ")
            && script.contains("/boot/files/debian-12/linux initrd=initrd.gz auto=true"),
        "{script}"
    );
    assert!(
        script.contains("initrd ") && script.contains("debian-12/initrd.gz"),
        "{script}"
    );
    assert!(script.contains("kiln.node=n1.lab.example"), "{script}");
    assert!(
        script.contains("/boot/answers/52:54:00:00:00:01"),
        "{script}"
    );
    let token = script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kiln.token="))
        .expect("token in script")
        .to_string();
    let callback = app
        .client
        .put(format!("{}/api/v2/nodes/n1.lab.example", app.address))
        .bearer_auth(&token)
        .json(&json!({"bootenv": "local"}))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 200, "the script's token calls back");

    // Local: exit to the next boot device, no installer.
    let (_, script) = fetch("/boot/52:54:00:00:00:01.ipxe".into()).await;
    assert!(
        script.contains("exit") && !script.contains("kernel"),
        "{script}"
    );

    // The answer file, rendered per node.
    app.put("/api/v2/nodes/n1.lab.example")
        .json(&json!({"bootenv": "debian-12-install"}))
        .send()
        .await
        .unwrap();
    let (status, answer) = fetch("/boot/answers/52:54:00:00:00:01".into()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("hostname string n1.lab.example"),
        "{answer}"
    );

    // Files: whole, HEAD, Range, and nothing outside the directory.
    let url = format!("{}/boot/files/debian-12/linux", app.address);
    let whole = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.as_ref(), kernel.as_slice());
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "100000");
    let part = app
        .client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &kernel[10..20]);
    let (status, _) = fetch("/boot/files/../Cargo.toml".into()).await;
    assert_eq!(status, 404);
    let (status, _) = fetch("/boot/files/missing.img".into()).await;
    assert_eq!(status, 404);
});
