//! Shared test harness: a fresh database per test on SQLite or PostgreSQL,
//! and kiln started in-process on port 0 (zero2prod's `spawn_app`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use kiln::api::AppState;
use kiln::app::Application;
use kiln::db::Backend;
use kiln::settings::Settings;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Runs a test body once on SQLite and once on PostgreSQL, as two tests
/// named `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                $crate::common::in_actix_system(($body)(kiln::db::Backend::Sqlite))
            }

            #[test]
            fn postgres() {
                $crate::common::in_actix_system(($body)(kiln::db::Backend::Postgres))
            }
        }
    };
}

thread_local! {
    /// Every kiln this thread's test started, to stop when its body ends.
    static RUNNING: std::cell::RefCell<Vec<kiln::app::Stopper>> = Default::default();
}

/// Remembers a started kiln so [`in_actix_system`] stops it.
pub fn stop_at_end(stopper: kiln::app::Stopper) {
    RUNNING.with(|running| running.borrow_mut().push(stopper));
}

/// Runs a test body on a fresh actix system, then stops every kiln it
/// started the way the binary stops: runs, hooks and servers still in
/// flight end before the system goes away, so nothing drops a pooled
/// connection outside a runtime.
pub fn in_actix_system<F: std::future::Future<Output = ()>>(body: F) {
    let system = actix_web::rt::System::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| system.block_on(body)));
    let started: Vec<_> = RUNNING.with(|running| running.borrow_mut().drain(..).collect());
    system.block_on(async move {
        for stopper in started {
            stopper.stop().await;
        }
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn postgres_server_url() -> String {
    std::env::var("KILN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

impl TestDb {
    /// Creates an empty database on `backend`. The PostgreSQL half fails
    /// loudly when the server cannot be reached; it is never skipped.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("kiln.db").display());
                Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let server = postgres_server_url();
                let admin = Database::connect(server.as_str())
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                        "PostgreSQL is not reachable at {server} (set KILN_TEST_POSTGRES_URL or \
                         start it with scripts/test): {e}"
                    )
                    });
                let name = format!("kiln_test_{}", unique_suffix());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let mut url = url::Url::parse(&server).expect("postgres url");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A directory for this test's exported files.
    pub fn export_dir(&self) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-export-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("export dir");
        dir
    }

    /// A migrated connection to this database.
    pub async fn connect(&self) -> DatabaseConnection {
        let db = kiln::db::connect(&self.url, 5).await.expect("connect");
        kiln::db::migrate(&db).await.expect("migrate");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any runtime we may block; use a private one.
        let server = postgres_server_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(server.as_str()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Settings for a test: defaults, port 0, the given database.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut settings = Settings::defaults();
    settings.database.url = db.url.clone();
    settings.database.max_connections = 5;
    settings.http.bind = "127.0.0.1:0".into();
    settings.auth.admin_token = TEST_TOKEN.into();
    // Tests define the roles they need; built-ins are tested on their own.
    settings.cluster.builtin_roles = false;
    settings.provisioner.export_dir = db.export_dir();
    settings
}

/// The admin token every spawned test app accepts.
pub const TEST_TOKEN: &str = "test-admin-token";

/// A running kiln and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub db: DatabaseConnection,
    pub state: AppState,
    pub client: reqwest::Client,
    pub test_db: TestDb,
}

impl TestApp {
    /// A request builder for `path` with the admin token.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(TEST_TOKEN)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.address))
            .bearer_auth(TEST_TOKEN)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .put(format!("{}{path}", self.address))
            .bearer_auth(TEST_TOKEN)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(format!("{}{path}", self.address))
            .bearer_auth(TEST_TOKEN)
    }
}

/// Starts kiln in-process on a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts kiln in-process after `adjust` has changed the test settings.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let test_db = TestDb::new(backend).await;
    let mut settings = test_settings(&test_db);
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("kiln starts");
    let port = app.port();
    let state = app.state().clone();
    stop_at_end(app.stopper());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db: state.db.clone(),
        state,
        client: reqwest::Client::new(),
        test_db,
    }
}
pub mod orchestration;
pub mod process;

/// Reports a small hardware inventory for `node` (a machine already
/// running), so its inventory role does not hold its queue waiting for
/// the discovery image's report.
pub async fn report_inventory(base: &str, node: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{base}/api/v2/nodes/{node}/inventory"))
        .bearer_auth(TEST_TOKEN)
        .json(&serde_json::json!({
            "cpus": {"count": 1, "model": "test"},
            "memory_mib": 1024,
            "disks": [],
            "nics": [],
            "system": {"vendor": "", "product": "", "serial": ""}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}
