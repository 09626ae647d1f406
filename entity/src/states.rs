//! The enumerated columns, stored as text (readable in `psql`) and read
//! back as Rust enums: a value no variant names fails the read instead of
//! turning into some default.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a noderole is in its life (DESIGN section 2; OpenCrowbar's
/// integers in the comments).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum NoderoleState {
    /// 4: bound, not yet committed.
    #[sea_orm(string_value = "proposed")]
    Proposed,
    /// 1: committed, waiting for its parents, its node, or a slot.
    #[sea_orm(string_value = "todo")]
    Todo,
    /// 2: a run is queued or executing.
    #[sea_orm(string_value = "transition")]
    Transition,
    /// 0: its last run succeeded.
    #[sea_orm(string_value = "active")]
    Active,
    /// -1: its last run failed.
    #[sea_orm(string_value = "error")]
    Error,
    /// 3: an ancestor is in error.
    #[sea_orm(string_value = "blocked")]
    Blocked,
}

/// The lifecycle of a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// A deployment's state. Only `proposed` and `committed` are stored (the
/// operator's intent); `active` and `error` are read off its noderoles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    #[sea_orm(string_value = "proposed")]
    Proposed,
    #[sea_orm(string_value = "committed")]
    Committed,
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "error")]
    Error,
}

/// The jig that executes a role's runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum JigKind {
    #[sea_orm(string_value = "noop")]
    Noop,
    #[sea_orm(string_value = "test")]
    Test,
    #[sea_orm(string_value = "script")]
    Script,
    #[sea_orm(string_value = "builtin")]
    Builtin,
}

/// What a bootenv boots: a kernel and initrd over iPXE, or the node's own
/// disk.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum BootenvKind {
    /// What a bootenv is unless it says otherwise (cluster files too).
    #[default]
    #[sea_orm(string_value = "ipxe")]
    Ipxe,
    #[sea_orm(string_value = "local")]
    Local,
}

/// The stored name of each value, as a `&'static str` (the text the
/// column holds, the API shows and cluster files write).
macro_rules! stored_names {
    ($($enum:ident { $($variant:ident => $name:literal),+ $(,)? })+) => {$(
        impl $enum {
            pub fn as_str(self) -> &'static str {
                match self { $($enum::$variant => $name),+ }
            }

            /// The value a stored or written name stands for.
            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($name => Some($enum::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

stored_names! {
    NoderoleState {
        Proposed => "proposed", Todo => "todo", Transition => "transition",
        Active => "active", Error => "error", Blocked => "blocked",
    }
    RunState {
        Queued => "queued", Running => "running", Succeeded => "succeeded",
        Failed => "failed", Cancelled => "cancelled",
    }
    DeploymentState {
        Proposed => "proposed", Committed => "committed", Active => "active", Error => "error",
    }
    JigKind { Noop => "noop", Test => "test", Script => "script", Builtin => "builtin" }
    BootenvKind { Ipxe => "ipxe", Local => "local" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    /// The names `as_str` gives are the ones the column stores.
    #[test]
    fn stored_names_match_the_column_values() {
        for s in NoderoleState::iter() {
            assert_eq!(s.to_value(), s.as_str());
            assert_eq!(NoderoleState::parse(s.as_str()), Some(s));
        }
        for s in RunState::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
        for s in DeploymentState::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
        for s in JigKind::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
        for s in BootenvKind::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
        assert!(NoderoleState::try_from_value(&"finished".to_string()).is_err());
    }
}
