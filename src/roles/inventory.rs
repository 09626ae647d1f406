//! inventory, the discovery role that learns what a machine is. Its jig
//! waits for the machine's own report (`PUT /api/v2/nodes/{key}/inventory`
//! from the discovery image, see `scripts/discovery/kiln-inventory`) and
//! succeeds once one has arrived that is newer than the node's last return
//! to alive (`node.alive_since`): a report from an earlier boot describes
//! hardware that may have changed since (a disk swapped while it was down).
//! A node never seen coming back alive (defined alive by the operator)
//! takes any report. No report within `inventory.timeout_ms` of the run's
//! start fails the run, saying what it waited for.
//!
//! The role has no hooks: the role re-runs whenever the node comes back
//! alive, like every discovery role (`domain::nodes::update_node`).
//!
//! The jig polls the database at a short interval rather than listening
//! for `InventoryReceived`: a report that came in before the run started is
//! found the same way as one that comes in while it waits, and a restarted
//! kiln's re-run needs nothing held in memory. While it waits it parks its
//! slot (`SlotLease::parked_while`): a machine that never reports holds
//! none of the global slots, only its own node's queue.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::DatabaseConnection;

use super::read_persistently;
use crate::db::inventory;
use crate::jigs::{Jig, JigContext, JigResult};
use crate::shutdown::Shutdown;

/// The role's name.
pub const INVENTORY: &str = "inventory";

/// How often the jig looks for the report while it waits.
const POLL: Duration = Duration::from_millis(100);

/// The jig: succeeds once the node's inventory is newer than its last
/// return to alive, fails when none is within the timeout.
pub struct InventoryJig {
    pub db: DatabaseConnection,
    /// `inventory.timeout_ms`.
    pub timeout: Duration,
    /// Ends the wait (and the retries of its reads) when kiln stops.
    pub shutdown: Shutdown,
}

/// Whether a report received at `received` counts for a node last back
/// alive at `alive_since`.
pub fn is_fresh(received: Option<DateTime<Utc>>, alive_since: Option<DateTime<Utc>>) -> bool {
    match (received, alive_since) {
        (Some(received), Some(since)) => received > since,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl Jig for InventoryJig {
    fn run(&self, ctx: JigContext) -> BoxFuture<'static, JigResult> {
        let db = self.db.clone();
        let timeout = self.timeout;
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let node_id = ctx.node.id;
            let name = ctx.node.name.clone();
            let freshness = match read_freshness(&db, &shutdown, node_id).await {
                Ok(freshness) => freshness,
                Err(e) => return JigResult::failed(e),
            };
            // Waiting on the machine is not work: the slot goes to the
            // next run meanwhile.
            let waited = match freshness {
                (received, alive_since) if is_fresh(received, alive_since) => {
                    Ok(Waited::Fresh(received))
                }
                _ => {
                    ctx.slot
                        .parked_while(wait_for_report(&db, &shutdown, node_id, timeout))
                        .await
                }
            };
            match waited {
                Ok(Waited::Fresh(received)) => received_result(&db, node_id, &name, received).await,
                Ok(Waited::TooLong(received, alive_since)) => {
                    JigResult::failed(waited_too_long(&name, timeout, received, alive_since))
                }
                Ok(Waited::Stopped) => {
                    JigResult::failed("kiln stopped while the inventory role waited")
                }
                Err(e) => JigResult::failed(e),
            }
        })
    }
}

/// How a wait for the report ended.
enum Waited {
    /// A report newer than the return to alive, received then.
    Fresh(Option<DateTime<Utc>>),
    /// None within the timeout: the last report and return to alive.
    TooLong(Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    Stopped,
}

/// When the node's inventory was received and when it last came back
/// alive, retried through database faults.
async fn read_freshness(
    db: &DatabaseConnection,
    shutdown: &Shutdown,
    node_id: i64,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), String> {
    read_persistently("reading the node's inventory", shutdown, || {
        inventory::freshness(db, node_id)
    })
    .await
}

/// Looks for a fresh report every `POLL` until `timeout` passes.
async fn wait_for_report(
    db: &DatabaseConnection,
    shutdown: &Shutdown,
    node_id: i64,
    timeout: Duration,
) -> Result<Waited, String> {
    let started = Instant::now();
    loop {
        let (received, alive_since) = read_freshness(db, shutdown, node_id).await?;
        if is_fresh(received, alive_since) {
            return Ok(Waited::Fresh(received));
        }
        if started.elapsed() >= timeout {
            return Ok(Waited::TooLong(received, alive_since));
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.stopping() => return Ok(Waited::Stopped),
        }
    }
}

/// The success: a summary of what the machine is, in the runlog and wall.
async fn received_result(
    db: &DatabaseConnection,
    node_id: i64,
    name: &str,
    received: Option<DateTime<Utc>>,
) -> JigResult {
    let row = inventory::of_node(db, node_id).await.ok().flatten();
    let summary = row
        .as_ref()
        .map(|row| {
            let doc = &row.document;
            let count = |key: &str| doc[key].as_array().map_or(0, Vec::len);
            format!(
                "{} cpus, {} MiB memory, {} disks, {} nics",
                doc["cpus"]["count"],
                doc["memory_mib"],
                count("disks"),
                count("nics")
            )
        })
        .unwrap_or_default();
    let at = received.map(|r| r.to_rfc3339()).unwrap_or_default();
    JigResult {
        succeeded: true,
        runlog: format!("inventory of {name} received at {at}: {summary}\n"),
        wall: Some(serde_json::json!({ "inventory_received_at": at })),
        ..Default::default()
    }
}

/// Why the run failed: how long it waited, for what, and how a machine
/// reports.
fn waited_too_long(
    name: &str,
    timeout: Duration,
    received: Option<DateTime<Utc>>,
    alive_since: Option<DateTime<Utc>>,
) -> String {
    let last = match received {
        Some(r) => format!("its last inventory is from {}", r.to_rfc3339()),
        None => "it never reported an inventory".to_string(),
    };
    let since = alive_since
        .map(|s| format!(", before it came back alive at {}", s.to_rfc3339()))
        .unwrap_or_default();
    format!(
        "no inventory from {name} within {}ms ({last}{since}); its discovery image reports one with \
         PUT /api/v2/nodes/{name}/inventory and its node token (scripts/discovery/kiln-inventory)",
        timeout.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn only_a_report_after_the_return_to_alive_counts() {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        assert!(is_fresh(Some(t(20)), Some(t(10))));
        assert!(!is_fresh(Some(t(5)), Some(t(10))));
        assert!(is_fresh(Some(t(5)), None));
        assert!(!is_fresh(None, Some(t(10))));
        assert!(!is_fresh(None, None));
    }
}
