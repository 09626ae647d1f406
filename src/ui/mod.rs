//! The web UI: one HTML page and its ES modules, compiled into the binary.
//!
//! `/` and every `/ui/...` path answer with the page, which routes on the
//! client, so each view has its own linkable, reloadable address. Assets live
//! under `/ui/assets/{version}/{file}`, where `version` is a digest of all
//! assets: a page always loads the assets it was served with, and browsers
//! may keep them forever. The page itself is never cached.
//!
//! Architecture invariant: the UI talks to kiln only through `/api/v2`, as
//! any other client would; nothing here reads the database or the actors.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page may load.
const ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("router.js", JS),
    asset!("live.js", JS),
    asset!("dom.js", JS),
    asset!("views/nodes.js", JS),
    asset!("views/deployments.js", JS),
    asset!("views/deployment.js", JS),
    asset!("views/noderole.js", JS),
    asset!("views/runs.js", JS),
    asset!("views/editor.js", JS),
];

const INDEX: &str = include_str!("assets/index.html");

/// The placeholder in `index.html` replaced by the versioned asset prefix.
const PREFIX_MARK: &str = "{{assets}}";

/// Headers every UI response carries: no inline script, no framing, no
/// sniffing, and nothing loaded from elsewhere.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// A short digest of every asset: changes whenever any of them does.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hash = Sha256::new();
        for asset in ASSETS {
            hash.update(asset.name.as_bytes());
            hash.update([0]);
            hash.update(asset.body);
        }
        hex::encode(&hash.finalize()[..6])
    })
}

/// The page, with the asset prefix filled in.
fn index_html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| INDEX.replace(PREFIX_MARK, &format!("/ui/assets/{}", version())))
}

fn secure(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    for (name, value) in SECURITY_HEADERS {
        builder.insert_header((name, value));
    }
    builder
}

/// `GET /` and `GET /ui/...`: the page (the client picks the view).
async fn page() -> HttpResponse {
    secure(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(index_html())
}

/// `GET /ui/assets/{version}/{file}`: an embedded asset. The current
/// version is cached for good; any other is served uncached, so a page
/// from before an upgrade still works.
async fn asset(req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (asked_version, name) = path.into_inner();
    let Some(found) = ASSETS.iter().find(|a| a.name == name) else {
        return secure(HttpResponse::NotFound())
            .content_type("text/plain; charset=utf-8")
            .body(format!("no UI asset `{name}`"));
    };
    let current = asked_version == version();
    let etag = format!("\"{}\"", version());
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v == HeaderValue::from_str(&etag).expect("hex etag"));
    let mut response = if current && matches {
        secure(HttpResponse::NotModified())
    } else {
        secure(HttpResponse::Ok())
    };
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag));
    if current && matches {
        return response.finish();
    }
    response.content_type(found.content_type).body(found.body)
}

/// `/ui` without a slash: the page's home.
async fn home() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/ui/nodes"))
        .finish()
}

/// Mounts the UI. Register before the API: its catch-all scope would
/// otherwise answer these paths with a JSON 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let read = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.route("/", read().to(page))
        .route("/ui", read().to(home))
        .route("/ui/assets/{version}/{file:.+}", read().to(asset))
        .route("/ui/{view:.*}", read().to(page));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for asset in ASSETS {
            if !asset.name.ends_with(".js") {
                continue;
            }
            let text = std::str::from_utf8(asset.body).expect("utf-8 module");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line
                    .split(['\'', '"'])
                    .nth(1)
                    .expect("import names a module");
                let base = asset.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
                for piece in spec.split('/') {
                    match piece {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        other => parts.push(other),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {spec} ({target}), which is not embedded",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn the_page_links_assets_under_the_current_version() {
        let page = index_html();
        assert!(!page.contains(PREFIX_MARK));
        assert!(page.contains(&format!("/ui/assets/{}/app.js", version())));
    }
}
