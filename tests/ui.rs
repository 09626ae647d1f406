//! The web UI as a browser first meets it: the page at every view's
//! address, its assets with their types and cache headers, and the API
//! untouched beside it. (The views themselves are driven in a real browser
//! by `tests/browser/run.sh`.)

mod common;

use common::spawn_app;
use kiln::db::Backend;

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The UI does not touch the database, so SQLite is enough here.
#[actix_web::test]
async fn every_view_address_serves_the_page_and_its_assets() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let mut page = String::new();
    for path in [
        "/",
        "/ui/nodes",
        "/ui/deployments",
        "/ui/deployments/ubuntu.lab",
        "/ui/noderoles/42",
        "/ui/runs?x=1",
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert!(header(&response, "content-security-policy").contains("script-src 'self'"));
        page = response.text().await.expect("body");
    }

    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/ui/assets/"))
        .collect();
    assert_eq!(
        assets.len(),
        3,
        "icon, stylesheet and app module: {assets:?}"
    );
    for asset in &assets {
        let response = client
            .get(format!("{}{asset}", app.address))
            .send()
            .await
            .expect("asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(header(&response, "cache-control").contains("immutable"));
        let expected = match asset.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert_eq!(header(&response, "content-type"), expected, "{asset}");
    }

    let module = assets.iter().find(|a| a.ends_with("/app.js")).unwrap();
    let prefix = module.trim_end_matches("app.js");
    let view = client
        .get(format!("{}{prefix}views/deployment.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), 200);
    let missing = client
        .get(format!("{}{prefix}views/nope.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn the_api_beside_the_ui_keeps_its_token_and_json_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let open = client
        .get(format!("{}/api/v2/nodes", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401);
    let unknown = app.get("/api/v2/no-such-thing").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(header(&redirect, "location"), "/ui/nodes");
}
