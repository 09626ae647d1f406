//! The admin API through real HTTP on both databases: happy paths, bad
//! input as 4xx naming the field, authentication, and the walk-through a
//! newcomer does with curl.

mod common;

use std::time::{Duration, Instant};

use common::orchestration::{define_roles, role};
use common::spawn_app;
use kiln::db::roles::JigKind;
use serde_json::{json, Value};

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let value = resp.json().await.unwrap_or(Value::Null);
    (status, value)
}

fn node_json(name: &str, mac: &str, ip: &str) -> Value {
    json!({ "name": name, "alive": true, "interfaces": [{ "mac": mac, "ip": ip }] })
}

on_both_databases!(nodes_crud_and_field_errors, |backend| async move {
    let app = spawn_app(backend).await;
    let (status, created) = body(
        app.post("/api/v2/nodes")
            .json(&node_json(
                "n1.lab.example",
                "52:54:00:00:00:01",
                "10.99.0.11",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["token"].as_str().unwrap().len() >= 32);
    assert!(created.get("token_hash").is_none());
    insta::assert_json_snapshot!("node_created", created, {
        ".id" => "[id]", ".deployment_id" => "[id]", ".token" => "[token]",
        ".created_at" => "[time]", ".updated_at" => "[time]",
        ".interfaces[].id" => "[id]", ".interfaces[].node_id" => "[id]",
    });

    let (status, err) = body(
        app.post("/api/v2/nodes")
            .json(&node_json(
                "n1.lab.example",
                "52:54:00:00:00:02",
                "10.99.0.12",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "conflict");
    // Another machine with n1's address: named as a duplicate address, not
    // as its (new) MAC.
    let (status, err) = body(
        app.post("/api/v2/nodes")
            .json(&node_json(
                "n9.lab.example",
                "52:54:00:00:00:09",
                "10.99.0.11",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(
        err["error"]["message"], "interface address `10.99.0.11` already exists",
        "{err}"
    );

    let cases = [
        (
            json!({"name": "x", "interfaces": [{"mac": "zz"}]}),
            422,
            "interfaces[0].mac",
        ),
        (
            json!({"name": "x", "interfaces": [{"mac": "52:54:00:00:00:09", "ip": "300.1.1.1"}]}),
            422,
            "interfaces[0].ip",
        ),
        (json!({"name": "x", "colour": "red"}), 422, "colour"),
        (json!({"alive": true}), 422, "name"),
        (json!({"name": "x", "alive": "yes"}), 422, "alive"),
        (json!({"name": "x", "bootenv": "plan9"}), 404, ""),
    ];
    for (input, code, field) in cases {
        let (status, err) =
            body(app.post("/api/v2/nodes").json(&input).send().await.unwrap()).await;
        assert_eq!(status, code, "{input} -> {err}");
        if !field.is_empty() {
            assert_eq!(err["error"]["field"], field, "{input} -> {err}");
        }
    }
    let (status, err) = body(
        app.post("/api/v2/nodes")
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");

    let (status, list) = body(app.get("/api/v2/nodes?limit=10").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, err) = body(app.get("/api/v2/nodes?limit=5000").send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["field"].clone()),
        (422, json!("limit"))
    );
    let (status, err) = body(app.get("/api/v2/nodes?alive=maybe").send().await.unwrap()).await;
    assert_eq!(status, 400, "{err}");

    let (status, one) = body(
        app.get("/api/v2/nodes/n1.lab.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let id = one["id"].as_i64().unwrap();
    let (status, _) = body(
        app.get(&format!("/api/v2/nodes/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = body(
        app.get("/api/v2/nodes/nope.lab.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = body(
        app.delete("/api/v2/nodes/n1.lab.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = body(
        app.get("/api/v2/nodes/n1.lab.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
});

on_both_databases!(tokens_admin_and_node, |backend| async move {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(format!("{}/api/v2/nodes", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .client
        .get(format!("{}/api/v2/nodes", app.address))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, created) = body(
        app.post("/api/v2/nodes")
            .json(&node_json(
                "n1.lab.example",
                "52:54:00:00:00:01",
                "10.99.0.11",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token = created["token"].as_str().unwrap().to_string();
    let (_, _) = body(
        app.post("/api/v2/nodes")
            .json(&node_json(
                "n2.lab.example",
                "52:54:00:00:00:02",
                "10.99.0.12",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let put = |node: &str, token: &str, payload: Value| {
        app.client
            .put(format!("{}/api/v2/nodes/{node}", app.address))
            .bearer_auth(token)
            .json(&payload)
            .send()
    };
    // The installer's and booted node's callbacks.
    let resp = put("n1.lab.example", &token, json!({"bootenv": "local"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = put("n1.lab.example", &token, json!({"alive": true}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Nothing else, and never another node.
    let resp = put("n1.lab.example", &token, json!({"available": false}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = put("n2.lab.example", &token, json!({"alive": false}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .client
        .get(format!("{}/api/v2/nodes", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, n1) = body(
        app.get("/api/v2/nodes/n1.lab.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(n1["bootenv"], "local");
    // /health and /metrics need no token.
    let resp = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("kiln_slots_capacity 10"), "{text}");
});

on_both_databases!(deployment_walkthrough, |backend| async move {
    let app = spawn_app(backend).await;
    let mut work = role("burnin", JigKind::Test, &[]);
    work.data = json!({"test": {"delay_ms": 100}});
    define_roles(&app.db, &[work]).await;
    for i in 1..=3 {
        let resp = app
            .post("/api/v2/nodes")
            .json(&node_json(
                &format!("n{i}.lab.example"),
                &format!("52:54:00:00:00:0{i}"),
                &format!("10.99.0.1{i}"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let (status, dep) = body(
        app.post("/api/v2/deployments")
            .json(&json!({"name": "burnin"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{dep}");
    assert_eq!(dep["state"], "proposed");
    let (status, err) = body(
        app.post("/api/v2/deployments")
            .json(&json!({"name": "x", "parent": "nope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].clone()),
        (422, json!("parent"))
    );
    for i in 1..=3 {
        let (status, nr) = body(
            app.post("/api/v2/noderoles")
                .json(&json!({"node": format!("n{i}.lab.example"), "role": "burnin", "deployment": "burnin"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{nr}");
        assert_eq!(nr["state"], "proposed");
        assert_eq!(nr["role"], "burnin");
    }
    let (status, err) = body(
        app.post("/api/v2/noderoles")
            .json(&json!({"node": "n1.lab.example", "role": "ghost", "deployment": "burnin"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].clone()),
        (422, json!("role"))
    );
    let (status, err) = body(
        app.post("/api/v2/noderoles")
            .json(&json!({"node": "n1.lab.example", "role": "burnin", "deployment": "burnin"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    let (status, _) = body(
        app.put("/api/v2/deployments/burnin/commit")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = body(
        app.put("/api/v2/deployments/nope/commit")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    // A list filter naming something unknown is a bad query parameter,
    // named, on every list alike.
    for (path, field) in [
        ("/api/v2/noderoles?node=ghost.lab.example", "node"),
        ("/api/v2/noderoles?role=ghost", "role"),
        ("/api/v2/noderoles?deployment=ghost", "deployment"),
        ("/api/v2/nodes?deployment=ghost", "deployment"),
        ("/api/v2/runs?node=ghost.lab.example", "node"),
    ] {
        let (status, err) = body(app.get(path).send().await.unwrap()).await;
        assert_eq!(
            (status, err["error"]["field"].clone()),
            (422, json!(field)),
            "{path}: {err}"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_busy = false;
    loop {
        let (status, anneal) = body(app.get("/api/v2/anneal").send().await.unwrap()).await;
        if status == 202 {
            saw_busy = true;
        } else {
            assert_eq!(status, 200);
            assert_eq!(anneal["counts"]["active"], 3, "{anneal}");
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {anneal}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_busy, "anneal answered 202 while runs were in flight");
    let (status, runs) = body(
        app.get("/api/v2/runs?state=succeeded")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(runs.as_array().unwrap().len(), 3);
    assert!(runs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["role"] == "burnin"));
    let (status, list) = body(
        app.get("/api/v2/noderoles?deployment=burnin&state=active")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let id = list[0]["id"].as_i64().unwrap();
    let (_, detail) = body(
        app.get(&format!("/api/v2/noderoles/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    insta::assert_json_snapshot!("noderole_detail", detail, {
        ".id" => "[id]", ".node_id" => "[id]", ".role_id" => "[id]", ".deployment_id" => "[id]",
        ".node" => "[node]", ".wall.test.ran_on" => "[node]", ".runlog" => "[runlog]",
        ".parents" => "[ids]", ".created_at" => "[time]", ".updated_at" => "[time]",
    });
    let (_, deployment) = body(app.get("/api/v2/deployments/burnin").send().await.unwrap()).await;
    insta::assert_json_snapshot!("deployment", deployment, {
        ".id" => "[id]", ".parent_id" => "[id]", ".created_at" => "[time]", ".updated_at" => "[time]",
    });
    let (status, err) = body(
        app.put(&format!("/api/v2/noderoles/{id}/retry"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (409, json!("conflict"))
    );
    let (status, _) = body(app.get("/api/v2/noderoles/999999").send().await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, sched) = body(app.get("/api/v2/scheduler").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(sched["capacity"], 10);
    let (status, roles) = body(app.get("/api/v2/roles").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(roles
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "burnin"));
    let (status, _) = body(app.get("/api/v2/nowhere").send().await.unwrap()).await;
    assert_eq!(status, 404);
});

on_both_databases!(openapi_covers_every_route, |backend| async move {
    let app = spawn_app(backend).await;
    let (status, spec) = body(app.get("/api/v2/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, 200);
    let expected = [
        ("get", "/health"),
        ("get", "/metrics"),
        ("get", "/boot/{mac}.ipxe"),
        ("get", "/boot/answers/{mac}"),
        ("get", "/boot/files/{tail}"),
        ("head", "/boot/files/{tail}"),
        ("get", "/api/v2/openapi.json"),
        ("get", "/api/v2/nodes"),
        ("post", "/api/v2/nodes"),
        ("get", "/api/v2/nodes/{key}"),
        ("put", "/api/v2/nodes/{key}"),
        ("delete", "/api/v2/nodes/{key}"),
        ("get", "/api/v2/nodes/{key}/power"),
        ("put", "/api/v2/nodes/{key}/power"),
        ("put", "/api/v2/nodes/{key}/inventory"),
        ("get", "/api/v2/roles"),
        ("get", "/api/v2/roles/{key}"),
        ("get", "/api/v2/bootenvs"),
        ("get", "/api/v2/deployments"),
        ("post", "/api/v2/deployments"),
        ("get", "/api/v2/deployments/{key}"),
        ("put", "/api/v2/deployments/{key}/commit"),
        ("put", "/api/v2/deployments/{key}/propose"),
        ("get", "/api/v2/noderoles"),
        ("post", "/api/v2/noderoles"),
        ("get", "/api/v2/noderoles/{id}"),
        ("put", "/api/v2/noderoles/{id}"),
        ("put", "/api/v2/noderoles/{id}/commit"),
        ("put", "/api/v2/noderoles/{id}/propose"),
        ("put", "/api/v2/noderoles/{id}/retry"),
        ("get", "/api/v2/runs"),
        ("get", "/api/v2/runs/{id}"),
        ("get", "/api/v2/leases"),
        ("get", "/api/v2/scheduler"),
        ("get", "/api/v2/anneal"),
        ("get", "/api/v2/events"),
    ];
    let paths = spec["paths"].as_object().expect("paths");
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the spec"
        );
    }
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        expected.len()
    );
    assert!(
        spec["components"]["schemas"]["CreateNode"].is_object(),
        "{}",
        spec["components"]
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "{id} is not unique");
            // Admin routes ask for the bearer token; what machines fetch
            // while booting, liveness and the spec itself do not.
            let admin = path.starts_with("/api/v2/") && path != "/api/v2/openapi.json";
            assert_eq!(
                op["security"] == json!([{"bearer": []}]),
                admin,
                "{method} {path}: {}",
                op["security"]
            );
            let responses = op["responses"].as_object().unwrap();
            assert_eq!(responses.contains_key("401"), admin, "{method} {path}");
            for (status, response) in responses.iter().filter(|(s, _)| *s != "204") {
                let content = response["content"].as_object();
                assert!(
                    content.is_some_and(|c| c.values().all(|m| m["schema"].is_object())),
                    "{method} {path} {status} has no response schema"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let anneal = &paths["/api/v2/anneal"]["get"]["responses"];
    assert!(anneal["202"]["content"]["application/json"].is_object());
    let events = &paths["/api/v2/events"]["get"]["responses"]["200"]["content"];
    assert!(events["text/event-stream"].is_object(), "{events}");
    assert!(paths["/api/v2/nodes"]["post"]["responses"]["413"].is_object());
});

on_both_databases!(events_stream_facts, |backend| async move {
    use futures::StreamExt;
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(format!(
            "{}/api/v2/events?token={}",
            app.address,
            common::TEST_TOKEN
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let _hello = stream.next().await.unwrap().unwrap();
    app.post("/api/v2/nodes")
        .json(&node_json(
            "n1.lab.example",
            "52:54:00:00:00:01",
            "10.99.0.11",
        ))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("event: NodeCreated") {
        assert!(Instant::now() < deadline, "no NodeCreated event: {seen}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"node\":\"n1.lab.example\""), "{seen}");
    let resp = app
        .client
        .get(format!("{}/api/v2/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
});

/// Todo noderoles on `node`, as the API lists them.
async fn todo_on(app: &common::TestApp, node: &str) -> usize {
    let (_, list) = body(
        app.get(&format!("/api/v2/noderoles?node={node}&state=todo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    list.as_array().map(Vec::len).unwrap_or(0)
}

on_both_databases!(anneal_says_why_work_waits, |backend| async move {
    let app = spawn_app(backend).await;
    define_roles(
        &app.db,
        &[
            role("burnin", JigKind::Noop, &[]),
            role("after-burnin", JigKind::Noop, &["burnin"]),
        ],
    )
    .await;
    for node in [
        json!({"name": "down.lab.example"}),
        json!({"name": "spare.lab.example", "alive": true, "available": false}),
    ] {
        let resp = app.post("/api/v2/nodes").json(&node).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    app.post("/api/v2/deployments")
        .json(&json!({"name": "burnin"}))
        .send()
        .await
        .unwrap();
    for (node, role) in [
        ("down.lab.example", "burnin"),
        ("down.lab.example", "after-burnin"),
        ("spare.lab.example", "burnin"),
    ] {
        let resp = app
            .post("/api/v2/noderoles")
            .json(&json!({"node": node, "role": role, "deployment": "burnin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{node} {role}");
    }
    let resp = app
        .put("/api/v2/deployments/burnin/commit")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let (status, anneal) = body(app.get("/api/v2/anneal").send().await.unwrap()).await;
    assert_eq!(status, 202, "{anneal}");
    let waiting = &anneal["waiting"];
    let down = todo_on(&app, "down.lab.example").await as i64;
    let spare = todo_on(&app, "spare.lab.example").await as i64;
    assert!(down >= 2 && spare >= 1, "{anneal}");
    assert_eq!(waiting["todo"], down + spare, "{anneal}");
    assert_eq!(waiting["node_not_alive"], down, "{anneal}");
    assert_eq!(waiting["node_not_available"], spare, "{anneal}");
    assert!(
        waiting["parents_not_active"].as_i64().unwrap() >= 1,
        "{anneal}"
    );
    assert_eq!(waiting["deployment_not_committed"], 0, "{anneal}");
    assert_eq!(waiting["ready"], 0, "{anneal}");

    // The reasons are what kept it waiting: remove them and it settles.
    for (node, change) in [
        ("down.lab.example", json!({"alive": true})),
        ("spare.lab.example", json!({"available": true})),
    ] {
        let resp = app
            .put(&format!("/api/v2/nodes/{node}"))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    common::orchestration::settle(&app.state.orchestrator, Duration::from_secs(30)).await;
    let (status, anneal) = body(app.get("/api/v2/anneal").send().await.unwrap()).await;
    assert_eq!(status, 200, "{anneal}");
    for reason in [
        "todo",
        "node_not_alive",
        "node_not_available",
        "parents_not_active",
    ] {
        assert_eq!(anneal["waiting"][reason], 0, "{reason}: {anneal}");
    }
});

/// An error answer's status, checked to be the one JSON error shape.
async fn json_error(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{status}: {content_type}: {text}"
    );
    let value: Value = serde_json::from_str(&text).unwrap();
    let error = &value["error"];
    assert!(error["code"].is_string(), "{value}");
    assert!(error["message"].is_string(), "{value}");
    (status, value)
}

on_both_databases!(every_error_is_json, |backend| async move {
    let app = spawn_app(backend).await;
    // A body over the size limit.
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(kiln::api::BODY_LIMIT + 1));
    let resp = app
        .post("/api/v2/nodes")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, value) = json_error(resp).await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    // A known path with a method it does not serve names the ones it does.
    let resp = app.delete("/api/v2/runs").send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET");
    let (status, value) = json_error(resp).await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let resp = app.post("/boot/files/kernel").send().await.unwrap();
    let (status, _) = json_error(resp).await;
    assert_eq!(status, 405);
    // Unknown routes, inside and outside the API.
    for path in ["/api/v2/nowhere", "/nowhere", "/api/v2/nodes/x/y/z"] {
        let (status, value) = json_error(app.get(path).send().await.unwrap()).await;
        assert_eq!(
            (status, value["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    // An offset past what the databases count (a 500, or a dropped
    // connection, before).
    for list in ["nodes", "runs", "noderoles"] {
        let path = format!("/api/v2/{list}?offset=9223372036854775808");
        let (status, value) = json_error(app.get(&path).send().await.unwrap()).await;
        assert_eq!(
            (status, value["error"]["field"].as_str()),
            (422, Some("offset")),
            "{path}"
        );
    }
    // Extractor errors: a query parameter of the wrong type, malformed JSON.
    let (status, _) = json_error(app.get("/api/v2/runs?limit=abc").send().await.unwrap()).await;
    assert_eq!(status, 400);
    let resp = app
        .put("/api/v2/nodes/x")
        .body("{bad")
        .send()
        .await
        .unwrap();
    let (status, _) = json_error(resp).await;
    assert_eq!(status, 400);
});
