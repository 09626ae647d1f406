//! Stopping kiln mid-anneal: every background task ends on the one
//! shutdown token, the stop waits for them, nothing logs an error or
//! panics on the way out, and the next start finishes the work.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::orchestration::*;
use kiln::app::Application;
use kiln::db::roles::JigKind;
use kiln::db::Key;
use kiln::domain::{Fact, NoderoleState};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const NODES: u32 = 20;
const ROLES: [&str; 3] = ["first", "second", "third"];

/// Keeps every event at ERROR level, as `target: message`.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Errors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            let mut message = String::new();
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    message.push_str(&format!("{}={value:?} ", field.name()));
                },
            );
            let line = format!("{}: {message}", event.metadata().target());
            self.0.lock().unwrap().push(line);
        }
    }
}

async fn build_cluster(db: &sea_orm::DatabaseConnection) {
    let mut specs = Vec::new();
    for (i, name) in ROLES.iter().enumerate() {
        let requires: Vec<&str> = ROLES[..i].iter().rev().take(1).copied().collect();
        let mut spec = role(name, JigKind::Test, &requires);
        // Implicit: each node's chain is its own.
        spec.implicit = true;
        spec.data = serde_json::json!({ "test": { "delay_ms": 100 } });
        specs.push(spec);
    }
    define_roles(db, &specs).await;
}

on_both_databases!(stopping_mid_anneal_is_clean, |backend| async move {
    let errors = Errors::default();
    let _log =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(errors.clone()));
    let test_db = common::TestDb::new(backend).await;
    build_cluster(&test_db.connect().await).await;

    let app = Application::build(common::test_settings(&test_db))
        .await
        .expect("kiln starts");
    let stopper = app.stopper();
    let orch = app.state().orchestrator.clone();
    let mut facts = orch.stream();
    actix_web::rt::spawn(app.run_until_stopped());
    kiln::db::deployments::create(orch.db(), "work", None, "")
        .await
        .unwrap();
    let names: Vec<String> = (0..NODES).map(|i| format!("n{i}.lab.example")).collect();
    for (i, name) in names.iter().enumerate() {
        add_node(&orch, name, i as u32 + 1, false).await;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    bind_all(&orch, "work", "third", &refs).await;
    orch.commit_deployment(&Key::Name("work".into()))
        .await
        .unwrap();

    // Mid-anneal: the first run has finished, ten more hold the slots.
    loop {
        match facts.recv().await.expect("fact stream") {
            Fact::RunFinished(_) => break,
            _ => continue,
        }
    }
    tokio::time::timeout(Duration::from_secs(20), stopper.stop())
        .await
        .expect("kiln stops within 20 s");
    let logged = errors.0.lock().unwrap().clone();
    assert!(logged.is_empty(), "errors while stopping: {logged:#?}");

    // Nothing was lost: the next start finishes every noderole.
    let app = Application::build(common::test_settings(&test_db))
        .await
        .expect("kiln starts again");
    let orch = app.state().orchestrator.clone();
    common::stop_at_end(app.stopper());
    actix_web::rt::spawn(app.run_until_stopped());
    let counts = settle(&orch, Duration::from_secs(60)).await;
    assert_eq!(
        count(&counts, NoderoleState::Active),
        i64::from(NODES) * ROLES.len() as i64,
        "{counts:?}"
    );
    let logged = errors.0.lock().unwrap().clone();
    assert!(logged.is_empty(), "errors after restarting: {logged:#?}");
});
