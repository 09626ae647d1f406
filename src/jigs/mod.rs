//! Jigs execute runs. A role names its jig; the node actor loads the run's
//! context when the run starts (not when it was queued) and hands it over.
//!
//! Architecture invariant: a jig never writes noderole or run state; it
//! returns a [`JigResult`] and the node actor records it.

mod noop;
mod script;
mod test;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use script::ScriptJig;

pub use crate::domain::outcome::JigResult;
use crate::domain::JigKind;

/// Everything a jig may know about the run it executes.
#[derive(Clone)]
pub struct JigContext {
    pub run_id: i64,
    pub noderole_id: i64,
    pub node: entity::node::Model,
    /// The node's first address, if it has one.
    pub address: Option<String>,
    pub role: entity::role::Model,
    pub deployment: String,
    /// The role's default data with the noderole's committed data over it.
    pub data: serde_json::Value,
    /// The run's slot, which a jig waiting on its machine parks.
    pub slot: crate::actors::scheduler::SlotLease,
}

/// A value in a noderole's data that its jig cannot use: refused when a
/// cluster file sets it, and a failed run rather than a silent default
/// when it reaches the jig.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct BadData {
    /// Dotted path into the data, e.g. `test.delay_ms`.
    pub path: String,
    pub reason: String,
}

/// Whether `data` has the types the jig `jig` reads.
pub fn check_data(jig: JigKind, data: &serde_json::Value) -> Result<(), BadData> {
    match jig {
        JigKind::Test => test::check_data(data),
        JigKind::Noop | JigKind::Script | JigKind::Builtin => Ok(()),
    }
}

/// A way of executing a run.
pub trait Jig: Send + Sync {
    fn run(&self, ctx: JigContext) -> BoxFuture<'static, JigResult>;
}

/// The jigs kiln knows, and the builtins by role name.
#[derive(Clone)]
pub struct Jigs {
    script: Arc<ScriptJig>,
    builtins: HashMap<String, Arc<dyn Jig>>,
}

impl Jigs {
    /// `scripts_dir` resolves relative script paths; `timeout` bounds each script.
    pub fn new(scripts_dir: PathBuf, timeout: Duration) -> Self {
        Self {
            script: Arc::new(ScriptJig::new(scripts_dir, timeout)),
            builtins: HashMap::new(),
        }
    }

    /// Registers kiln's own implementation of a role.
    pub fn register_builtin(&mut self, role: &str, jig: Arc<dyn Jig>) {
        self.builtins.insert(role.to_string(), jig);
    }

    /// Executes a run with the jig its role names.
    pub fn run(&self, ctx: JigContext) -> BoxFuture<'static, JigResult> {
        match ctx.role.jig {
            JigKind::Noop => noop::run(),
            JigKind::Test => test::run(ctx),
            JigKind::Script => self.script.run(ctx),
            JigKind::Builtin => match self.builtins.get(&ctx.role.name) {
                Some(jig) => jig.run(ctx),
                None => failed(format!(
                    "kiln has no builtin jig for role {}",
                    ctx.role.name
                )),
            },
        }
    }
}

/// A run that failed before doing anything, saying why.
pub fn failed(reason: String) -> BoxFuture<'static, JigResult> {
    Box::pin(async move { JigResult::failed(reason) })
}
