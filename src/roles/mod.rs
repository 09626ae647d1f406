//! kiln's own roles, one file each with the role's name, its jig and its
//! hooks: `os_install.rs` (the seed's install, its reboot and watchdog),
//! `dhcp_database.rs` and `dns_database.rs` (kiln's DHCP answers and the
//! exported files), `inventory.rs` (waits for the machine's hardware report). The hooks are actors subscribed to the event bus; they
//! change the database only through the orchestrator's transactions.

pub mod dhcp_database;
pub mod dns_database;
pub mod inventory;
pub mod os_install;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;

pub use dhcp_database::{DhcpDatabaseJig, DhcpDatabaseRole, DHCP_DATABASE};
pub use dns_database::{DnsDatabaseJig, DnsDatabaseRole, DNS_DATABASE};
pub use inventory::{InventoryJig, INVENTORY};
pub use os_install::{
    InstallWatchdog, OsInstallJig, OsInstallRole, DEFAULT_TARGET_OS, OS_INSTALL, REBOOT_WALL_KEY,
};

use crate::actors::hub::persistently;
use crate::db::{noderoles, roles, Key, RepoError, RepoResult};
use crate::domain::anneal::queue_hook_run;
use crate::domain::{DomainError, Effects};
use crate::jigs::{Jig, JigResult};
use crate::orchestrator::Orchestrator;
use crate::provisioner::dhcp::DhcpTable;
use crate::provisioner::sightings::Sightings;
use crate::shutdown::Shutdown;

/// What kiln's roles' jigs need from the running kiln.
pub struct RoleSettings<'a> {
    pub db: &'a DatabaseConnection,
    pub export_dir: &'a Path,
    /// How nodes reach kiln (the ISC host file points iPXE at it).
    pub boot_url: &'a str,
    /// kiln's own DHCP server's table, when it runs one.
    pub dhcp_table: Option<Arc<DhcpTable>>,
    pub reboot_delay_ms: u64,
    /// How long the inventory role waits for the machine's report.
    pub inventory_timeout_ms: u64,
    /// What ends a jig's retries of a database read.
    pub shutdown: &'a Shutdown,
}

/// The builtin jigs of kiln's roles, by role name.
pub fn builtin_jigs(settings: RoleSettings<'_>) -> Vec<(String, Arc<dyn Jig>)> {
    vec![
        (
            OS_INSTALL.to_string(),
            Arc::new(OsInstallJig {
                default_delay_ms: settings.reboot_delay_ms,
            }) as Arc<dyn Jig>,
        ),
        (
            DHCP_DATABASE.to_string(),
            Arc::new(DhcpDatabaseJig {
                db: settings.db.clone(),
                export_dir: settings.export_dir.to_path_buf(),
                boot_url: settings.boot_url.to_string(),
                table: settings.dhcp_table,
                shutdown: settings.shutdown.clone(),
            }),
        ),
        (
            DNS_DATABASE.to_string(),
            Arc::new(DnsDatabaseJig {
                db: settings.db.clone(),
                export_dir: settings.export_dir.to_path_buf(),
                shutdown: settings.shutdown.clone(),
            }),
        ),
        (
            INVENTORY.to_string(),
            Arc::new(InventoryJig {
                db: settings.db.clone(),
                timeout: Duration::from_millis(settings.inventory_timeout_ms),
                shutdown: settings.shutdown.clone(),
            }),
        ),
    ]
}

/// Subscribes the roles' hooks, and the install watchdog unless
/// `install_timeout` is zero. Call before the orchestrator resumes work, so
/// no fact goes unheard.
pub fn subscribe_hooks(
    orchestrator: &Orchestrator,
    sightings: Arc<Sightings>,
    install_timeout: Duration,
) {
    orchestrator.subscribe(
        DhcpDatabaseRole::new(orchestrator.clone())
            .start()
            .recipient(),
    );
    orchestrator.subscribe(
        DnsDatabaseRole::new(orchestrator.clone())
            .start()
            .recipient(),
    );
    orchestrator.subscribe(OsInstallRole::new(orchestrator.clone()).start().recipient());
    if !install_timeout.is_zero() {
        let watchdog = InstallWatchdog::new(orchestrator.clone(), sightings, install_timeout);
        orchestrator.subscribe(watchdog.start().recipient());
    }
}

/// Queues a priority re-run of every noderole of `role` (joining runs still
/// queued), after `update` has changed each one's committed data, in one
/// transaction retried through database faults: a hook's re-run must be
/// queued, or the DHCP answers would lag behind.
async fn rerun_all(
    orchestrator: &Orchestrator,
    from: &'static str,
    role: &str,
    reason: &str,
    update: Arc<dyn Fn(&mut serde_json::Value) + Send + Sync>,
) -> Result<(), DomainError> {
    orchestrator
        .transact_retrying(from, "queueing a hook's re-runs", |txn| {
            let seq = orchestrator.queue_seq();
            let (role, reason, update) = (role.to_string(), reason.to_string(), update.clone());
            Box::pin(async move {
                let role = match roles::get(txn, &Key::Name(role)).await {
                    Ok(role) => role,
                    Err(RepoError::NotFound { .. }) => return Ok(((), Effects::default())),
                    Err(e) => return Err(e.into()),
                };
                let mut effects = Effects::default();
                for nr in noderoles::of_role(txn, role.id).await? {
                    let mut data = nr.committed_data.clone();
                    if !data.is_object() {
                        data = serde_json::json!({});
                    }
                    update(&mut data);
                    noderoles::set_data(txn, nr.id, None, Some(data)).await?;
                    effects.merge(queue_hook_run(txn, nr.id, &reason, true, &seq).await?);
                }
                Ok(((), effects))
            })
        })
        .await
}

/// A database read a jig needs, retried through database faults (see
/// [`persistently`]): the database being away is not the jig's failure.
/// A failure that is not a fault comes back as the jig's error.
async fn read_persistently<T, F, Fut>(what: &str, shutdown: &Shutdown, read: F) -> Result<T, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = RepoResult<T>>,
{
    persistently(what, shutdown, || {
        let reading = read();
        async move { Ok(reading.await?) }
    })
    .await
    .map_err(|e| match e {
        DomainError::Repo(repo) => repo.detail(),
        other => other.to_string(),
    })
}

/// The result of a jig that rewrites files: which it wrote, or why it
/// could not.
fn wrote_files(result: Result<Vec<String>, String>) -> JigResult {
    match result {
        Ok(written) => JigResult {
            succeeded: true,
            runlog: format!(
                "wrote: {}\n",
                if written.is_empty() {
                    "nothing (unchanged)".into()
                } else {
                    written.join(", ")
                }
            ),
            wall: Some(serde_json::json!({ "written": written })),
            ..Default::default()
        },
        Err(e) => JigResult::failed(e),
    }
}
