//! Facts: what happened, published on the event bus after the transaction
//! that made it true has committed.

use actix::Message;
use serde::Serialize;

use super::state::NoderoleState;

/// A node was registered (by the API, a cluster file, or DHCP discovery).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeCreated {
    pub node_id: i64,
    pub node: String,
}

/// A node will boot something else next; DHCP must follow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootenvChanged {
    pub node_id: i64,
    pub node: String,
    pub from: String,
    pub to: String,
}

/// A node started or stopped answering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeAliveChanged {
    pub node_id: i64,
    pub node: String,
    pub alive: bool,
}

/// A noderole moved between states.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoderoleStateChanged {
    pub noderole_id: i64,
    pub node_id: i64,
    pub node: String,
    pub role: String,
    pub from: NoderoleState,
    pub to: NoderoleState,
    /// False when a destructive role was marked active without running:
    /// such transitions fire no hooks.
    pub hooks: bool,
}

/// A run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFinished {
    pub run_id: i64,
    pub noderole_id: i64,
    pub node_id: i64,
    pub node: String,
    pub role: String,
    pub succeeded: bool,
}

/// A role asked for its node to be power-cycled after a delay (the
/// os-install role's reboot). Simulated machines and power drivers act on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebootScheduled {
    pub node_id: i64,
    /// The noderole whose run scheduled it; it answers for the machine's return.
    pub noderole_id: i64,
    pub node: String,
    pub delay_ms: u64,
}

/// A node's BMC reported another power state than kiln knew (a poll, a
/// power command, someone at the rack): the UI and the event stream follow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerStateChanged {
    pub node_id: i64,
    pub node: String,
    pub from: crate::bmc::PowerState,
    pub to: crate::bmc::PowerState,
}

/// A machine reported its hardware (`PUT /api/v2/nodes/{key}/inventory`);
/// the inventory role waits for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryReceived {
    pub node_id: i64,
    pub node: String,
}

/// A machine kiln had registered on its own (a discovered node) turned
/// out to be a node the operator defined by its BMC alone: it is that node
/// now (its interfaces, token and liveness moved over), and the
/// discovered node is gone. DHCP must follow the new name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeEnrolled {
    pub node_id: i64,
    pub node: String,
    /// The discovered node it absorbed, now deleted.
    pub merged_id: i64,
    pub merged: String,
    pub bootenv: String,
}

/// Every fact, as the bus carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "type")]
pub enum Fact {
    NodeCreated(NodeCreated),
    BootenvChanged(BootenvChanged),
    NodeAliveChanged(NodeAliveChanged),
    NoderoleStateChanged(NoderoleStateChanged),
    RunFinished(RunFinished),
    RebootScheduled(RebootScheduled),
    PowerStateChanged(PowerStateChanged),
    InventoryReceived(InventoryReceived),
    NodeEnrolled(NodeEnrolled),
}

impl Fact {
    /// The fact's name, as traces and streams show it.
    pub fn name(&self) -> &'static str {
        match self {
            Fact::NodeCreated(_) => "NodeCreated",
            Fact::BootenvChanged(_) => "BootenvChanged",
            Fact::NodeAliveChanged(_) => "NodeAliveChanged",
            Fact::NoderoleStateChanged(_) => "NoderoleStateChanged",
            Fact::RunFinished(_) => "RunFinished",
            Fact::RebootScheduled(_) => "RebootScheduled",
            Fact::PowerStateChanged(_) => "PowerStateChanged",
            Fact::InventoryReceived(_) => "InventoryReceived",
            Fact::NodeEnrolled(_) => "NodeEnrolled",
        }
    }

    /// The node the fact is about.
    pub fn node(&self) -> &str {
        match self {
            Fact::NodeCreated(f) => &f.node,
            Fact::BootenvChanged(f) => &f.node,
            Fact::NodeAliveChanged(f) => &f.node,
            Fact::NoderoleStateChanged(f) => &f.node,
            Fact::RunFinished(f) => &f.node,
            Fact::RebootScheduled(f) => &f.node,
            Fact::PowerStateChanged(f) => &f.node,
            Fact::InventoryReceived(f) => &f.node,
            Fact::NodeEnrolled(f) => &f.node,
        }
    }

    /// The key fields, short, for traces.
    pub fn summary(&self) -> String {
        match self {
            Fact::NodeCreated(_) => String::new(),
            Fact::BootenvChanged(f) => format!("{} -> {}", f.from, f.to),
            Fact::NodeAliveChanged(f) => format!("alive={}", f.alive),
            Fact::NoderoleStateChanged(f) => format!("{}: {} -> {}", f.role, f.from, f.to),
            Fact::RunFinished(f) => format!(
                "{} {}",
                f.role,
                if f.succeeded { "succeeded" } else { "failed" }
            ),
            Fact::RebootScheduled(f) => format!("in {}ms", f.delay_ms),
            Fact::PowerStateChanged(f) => format!("{} -> {}", f.from.as_str(), f.to.as_str()),
            Fact::InventoryReceived(_) => String::new(),
            Fact::NodeEnrolled(f) => format!("was {}", f.merged),
        }
    }
}
