//! Noderole states (DESIGN section 2), stored as text.

use serde::{Deserialize, Serialize};

/// Where a noderole is in its life. OpenCrowbar's integers in comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoderoleState {
    /// 4: bound, not yet committed.
    Proposed,
    /// 1: committed, waiting for its parents, its node, or a slot.
    Todo,
    /// 2: a run is queued or executing.
    Transition,
    /// 0: its last run succeeded.
    Active,
    /// -1: its last run failed.
    Error,
    /// 3: an ancestor is in error.
    Blocked,
}

impl NoderoleState {
    pub const ALL: [NoderoleState; 6] = [
        NoderoleState::Proposed,
        NoderoleState::Todo,
        NoderoleState::Transition,
        NoderoleState::Active,
        NoderoleState::Error,
        NoderoleState::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoderoleState::Proposed => "proposed",
            NoderoleState::Todo => "todo",
            NoderoleState::Transition => "transition",
            NoderoleState::Active => "active",
            NoderoleState::Error => "error",
            NoderoleState::Blocked => "blocked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl std::fmt::Display for NoderoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle of a run (stored as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}
