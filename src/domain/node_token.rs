//! What a node may say about itself with its own token. The token travels
//! through boot scripts on the provisioning network, so it may only report
//! progress that moves the node forward: "installed, boot from disk" and
//! "I am alive". Everything else (sending it back to an installer, taking
//! it down, making it unavailable) needs the admin token.
//!
//! This is the one place the rule lives: a later report a node makes
//! (deploy progress) is allowed here, next to these. The inventory is one:
//! [`check_inventory_report`].

use sea_orm::ConnectionTrait;

use super::{BootenvKind, DomainError, DomainResult};
use crate::db::bootenvs;
use crate::db::nodes::NodeChange;

/// Refuses, naming the field, any change a node's own token may not make.
pub async fn check_self_report<C: ConnectionTrait>(
    db: &C,
    change: &NodeChange,
) -> DomainResult<()> {
    if change.alive == Some(false) {
        return Err(refused("alive", "a node token may only set alive to true"));
    }
    if change.available.is_some() {
        return Err(refused(
            "available",
            "a node token may not change availability",
        ));
    }
    if change.bmc.is_some() {
        return Err(refused("bmc", "a node token may not change the node's BMC"));
    }
    if change.target_os.is_some() {
        return Err(refused(
            "target_os",
            "a node token may not change the target OS",
        ));
    }
    if let Some(name) = &change.bootenv {
        let local = matches!(bootenvs::get(db, name).await, Ok(b) if b.kind == BootenvKind::Local);
        if !local {
            return Err(refused(
                "bootenv",
                "a node token may only set bootenv to one that boots from disk (kind local)",
            ));
        }
    }
    Ok(())
}

/// A node's own token may report its inventory, as often as it boots: a
/// report describes the machine and moves it nowhere (lists filter on it,
/// templates and role data read it), so the worst a forged one does is
/// describe the machine wrongly, the same harm the token's alive report
/// can do. Only the node's own inventory: the handler has already checked
/// that the token is the node's.
pub fn check_inventory_report(node: &entity::node::Model) -> DomainResult<()> {
    if node.admin {
        // kiln's own servers are not inventoried by a discovery image.
        return Err(refused(
            "inventory",
            "an admin node's inventory is reported with the admin token",
        ));
    }
    Ok(())
}

fn refused(field: &str, reason: &str) -> DomainError {
    DomainError::Forbidden {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}
