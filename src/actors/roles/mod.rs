//! Role actors: the hooks of kiln's own roles, reacting to facts on the
//! event bus. Roles without special behaviour have none.

mod dhcp_database;
mod dns_database;
mod os_install;

pub use dhcp_database::{DhcpDatabaseRole, DHCP_DATABASE_ROLE};
pub use dns_database::{DnsDatabaseRole, DNS_DATABASE_ROLE};
pub use os_install::{OsInstallRole, DEFAULT_TARGET_OS};

use std::sync::Arc;

use sea_orm::TransactionTrait;

use super::runtime::{persistently, Runtime};
use crate::db::{noderoles, roles, Key};
use crate::domain::anneal::queue_hook_run;
use crate::domain::{DomainError, Effects};

/// Queues a priority re-run of every noderole of `role` (joining runs still
/// queued), after `update` has changed each one's committed data, in one
/// transaction.
async fn rerun_all(
    rt: &Arc<Runtime>,
    from: &'static str,
    role: &str,
    reason: &str,
    update: impl Fn(&mut serde_json::Value),
) -> Result<(), DomainError> {
    let effects = persistently("queueing a hook's re-runs", || async {
        let txn = rt.db.begin().await.map_err(crate::db::RepoError::from)?;
        let Ok(role) = roles::get(&txn, &Key::Name(role.to_string())).await else {
            return Ok(Effects::default());
        };
        let mut effects = Effects::default();
        for nr in noderoles::of_role(&txn, role.id).await? {
            let mut data = nr.committed_data.clone();
            if !data.is_object() {
                data = serde_json::json!({});
            }
            update(&mut data);
            noderoles::set_data(&txn, nr.id, None, Some(data)).await?;
            effects.merge(queue_hook_run(&txn, nr.id, reason, true, &rt.seq).await?);
        }
        txn.commit().await.map_err(crate::db::RepoError::from)?;
        Ok(effects)
    })
    .await?;
    rt.apply(from, effects).await;
    Ok(())
}
