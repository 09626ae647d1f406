//! Enrolment by BMC: an operator defines a node by its BMC alone (no
//! interface yet) and powers it on; the machine then boots unknown, kiln
//! registers it as a discovered node, and its discovery image reports the
//! BMC address it reads in-band. That report is where the two become one:
//! the discovered node is absorbed into the node defined by that BMC
//! (`db::nodes::absorb`), so the machine is one node, the operator's.
//!
//! Only a node kiln registered on its own is absorbed, only into a node
//! that has no interface yet, and only when kiln powered that node's
//! machine on (or cycled it) before the reporter was registered: a node
//! with bindings of its own, a BMC of its own or an admin node is never
//! deleted by a machine's report, a BMC node that already has interfaces
//! is another machine's, and a machine on the boot network cannot take
//! over a node kiln never started. Such reports are kept on the reporter
//! as they are, with a warning.
//!
//! A node whose BMC has no address yet takes the one its machine reports.

use sea_orm::ConnectionTrait;

use super::facts::{Fact, NodeEnrolled};
use super::nodes::liveness_effects;
use super::{DomainResult, Effects};
use crate::db::{bmcs, deployments, noderoles, nodes, roles, Key};

/// The node a machine's report belongs to after its BMC address was
/// followed, and what that changed.
pub struct Followed {
    pub node: entity::node::Model,
    pub effects: Effects,
    /// The discovered node absorbed into `node`, now deleted.
    pub absorbed: Option<i64>,
}

/// Follows the BMC address `reported` by the machine of `reporter`: into
/// the node defined by that BMC, or into `reporter`'s own empty
/// `bmc.address`, or nowhere.
pub async fn follow_reported_bmc<C: ConnectionTrait>(
    db: &C,
    reporter: entity::node::Model,
    reported: &str,
) -> DomainResult<Followed> {
    let address = reported.trim();
    let unchanged = |node| Followed {
        node,
        effects: Effects::default(),
        absorbed: None,
    };
    if address.is_empty() {
        return Ok(unchanged(reporter));
    }
    match bmcs::node_at_address(db, address).await? {
        Some(owner_id) if owner_id == reporter.id => Ok(unchanged(reporter)),
        Some(owner_id) => {
            let owner = nodes::get(db, &Key::Id(owner_id)).await?;
            match why_not_absorbed(db, &owner, &reporter).await? {
                None => absorb(db, owner, reporter).await,
                Some(reason) => {
                    tracing::warn!(
                        node = %reporter.name,
                        bmc = %address,
                        owner = %owner.name,
                        "the machine reports the BMC of another node, and is not merged into it: {reason}"
                    );
                    Ok(unchanged(reporter))
                }
            }
        }
        None => {
            if bmcs::fill_address(db, reporter.id, address).await? {
                tracing::info!(node = %reporter.name, bmc = %address, "the BMC address the machine reported fills the node's empty one");
            }
            Ok(unchanged(reporter))
        }
    }
}

/// Why `reporter` may not be absorbed into `owner`, if it may not.
async fn why_not_absorbed<C: ConnectionTrait>(
    db: &C,
    owner: &entity::node::Model,
    reporter: &entity::node::Model,
) -> DomainResult<Option<String>> {
    if nodes::interface_count(db, owner.id).await? > 0 {
        return Ok(Some(format!(
            "{} already has interfaces (it is another machine)",
            owner.name
        )));
    }
    // The machine that boots after kiln powered this BMC's machine on, not
    // one that happens to read the same address (a machine on the boot
    // network cannot take over a node kiln never started).
    let powered_on_at = bmcs::get(db, owner.id)
        .await?
        .and_then(|bmc| bmc.powered_on_at);
    match powered_on_at {
        Some(at) if at <= reporter.created_at => {}
        Some(at) => {
            return Ok(Some(format!(
                "{} was registered at {}, before kiln powered {} on at {}",
                reporter.name,
                reporter.created_at.to_rfc3339(),
                owner.name,
                at.to_rfc3339()
            )))
        }
        None => {
            return Ok(Some(format!(
                "kiln has not powered {} on (kiln power {} on enrols the machine that then boots)",
                owner.name, owner.name
            )))
        }
    }
    if reporter.admin {
        return Ok(Some(format!("{} is an admin node", reporter.name)));
    }
    if bmcs::get(db, reporter.id).await?.is_some() {
        return Ok(Some(format!("{} has a BMC of its own", reporter.name)));
    }
    let discovery: Vec<i64> = roles::discovery(db).await?.iter().map(|r| r.id).collect();
    let system = deployments::get(db, &Key::Name("system".into())).await?.id;
    let own = noderoles::of_node(db, reporter.id)
        .await?
        .into_iter()
        .filter(|nr| nr.deployment_id != system || !discovery.contains(&nr.role_id))
        .count();
    if own > 0 {
        return Ok(Some(format!(
            "{} has {own} binding(s) beyond discovery",
            reporter.name
        )));
    }
    Ok(None)
}

/// `reporter` becomes `owner`: one node for the machine, never two.
async fn absorb<C: ConnectionTrait>(
    db: &C,
    owner: entity::node::Model,
    reporter: entity::node::Model,
) -> DomainResult<Followed> {
    let node = nodes::absorb(db, &owner, &reporter).await?;
    tracing::info!(node = %node.name, discovered = %reporter.name, "enrolled: the discovered machine is the node defined by its BMC");
    let mut effects = Effects::with_facts(vec![Fact::NodeEnrolled(NodeEnrolled {
        node_id: node.id,
        node: node.name.clone(),
        merged_id: reporter.id,
        merged: reporter.name.clone(),
        bootenv: node.bootenv.clone(),
    })]);
    effects.merge(liveness_effects(db, &owner, &node).await?);
    // Its interfaces are new: what waited on them may be ready.
    effects.wake_annealer = true;
    Ok(Followed {
        node,
        effects,
        absorbed: Some(reporter.id),
    })
}
