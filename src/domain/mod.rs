//! The orchestration rules of DESIGN sections 1 and 2, as functions over a
//! database connection or transaction. Each returns the [`Effects`] the
//! caller applies after committing: facts to publish, runs to hand to node
//! actors, whether the annealer should look again.
//!
//! Architecture invariant: nothing here talks to actors; callers commit
//! the transaction first and only then apply the effects, so no actor ever
//! sees a fact that was rolled back.

pub mod anneal;
pub mod binding;
pub mod bmc;
pub mod enrolment;
pub mod facts;
pub mod lifecycle;
pub mod node_token;
pub mod nodes;
pub mod outcome;
pub mod state;
pub mod transitions;

pub use facts::Fact;
pub use state::{BootenvKind, DeploymentState, JigKind, NoderoleState, RunState};

use entity::run;

use crate::db::RepoError;

/// Why a domain operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("binding {role} on {node} would make a cycle in the noderole graph")]
    Cycle { node: String, role: String },
    #[error("{0}")]
    StateConflict(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The caller may not make this change (a node token's limits).
    #[error("{reason}")]
    Forbidden { field: String, reason: String },
}

impl DomainError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

/// What to do once the transaction that produced these has committed.
#[derive(Debug, Default)]
pub struct Effects {
    pub facts: Vec<Fact>,
    /// Queued runs to hand to their node actors, in queue order.
    pub runs: Vec<run::Model>,
    pub wake_annealer: bool,
}

impl Effects {
    pub fn merge(&mut self, other: Effects) {
        self.facts.extend(other.facts);
        self.runs.extend(other.runs);
        self.wake_annealer |= other.wake_annealer;
    }

    pub fn with_facts(facts: Vec<Fact>) -> Self {
        Self {
            facts,
            ..Default::default()
        }
    }
}

/// Deep-merges `overlay` into `base` (objects merge, anything else replaces).
pub fn merge_json(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge_json(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}
