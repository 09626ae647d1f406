//! What the API answers with: one response type per thing it shows, built
//! from the rows `db` reads. Entities are storage, not payloads, so a column
//! added to a table reaches a response only when a field is added here (the
//! node token's hash never does).
//!
//! Most views are written in field order. A few responses have always had
//! their keys sorted at every depth (they were built as JSON values): those
//! go out through [`sorted`], so they keep that order whatever the fields'.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::states::{BootenvKind, DeploymentState, JigKind, NoderoleState, RunState};
use entity::{bootenv, deployment, interface, noderole, run};
use sea_orm::Iterable;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::ToSchema;

use super::inventory::InventoryView;
use crate::actors::annealer::AnnealerStatus;
use crate::actors::hub::RunCounts;
use crate::db::{self, Backend};
use crate::orchestrator::AnnealStatus;

/// `view` as a JSON value: its keys, and those of everything in it, sorted.
pub fn sorted<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).expect("views serialise")
}

/// A stored state as the API writes it: its name, one of `names`.
fn named(names: impl Iterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

fn noderole_state() -> Object {
    named(NoderoleState::iter().map(NoderoleState::as_str))
}

fn run_state() -> Object {
    named(RunState::iter().map(RunState::as_str))
}

fn deployment_state() -> Object {
    named(DeploymentState::iter().map(DeploymentState::as_str))
}

fn jig_kind() -> Object {
    named(JigKind::iter().map(JigKind::as_str))
}

fn bootenv_kind() -> Object {
    named(BootenvKind::iter().map(BootenvKind::as_str))
}

/// One of a node's interfaces.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InterfaceView {
    pub id: i64,
    pub node_id: i64,
    pub mac: String,
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

impl From<interface::Model> for InterfaceView {
    fn from(row: interface::Model) -> Self {
        Self {
            id: row.id,
            node_id: row.node_id,
            mac: row.mac,
            ip: row.ip,
            hostname: row.hostname,
        }
    }
}

/// A node with its interfaces and inventory (never its token or the
/// token's hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    pub id: i64,
    pub name: String,
    pub admin: bool,
    pub alive: bool,
    pub available: bool,
    pub bootenv: String,
    pub target_os: Option<String>,
    pub deployment_id: i64,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub interfaces: Vec<InterfaceView>,
    /// How kiln powers it; null: nothing does (or `power.command`).
    pub bmc: Option<super::bmc::BmcView>,
    /// What the machine last reported of its hardware; null until it does.
    pub inventory: Option<InventoryView>,
}

impl From<db::nodes::NodeView> for NodeView {
    fn from(view: db::nodes::NodeView) -> Self {
        let node = view.node;
        Self {
            id: node.id,
            name: node.name,
            admin: node.admin,
            alive: node.alive,
            available: node.available,
            bootenv: node.bootenv,
            target_os: node.target_os,
            deployment_id: node.deployment_id,
            description: node.description,
            created_at: node.created_at,
            updated_at: node.updated_at,
            interfaces: view.interfaces.into_iter().map(Into::into).collect(),
            bmc: view.bmc.map(Into::into),
            inventory: view.inventory.and_then(InventoryView::from_row),
        }
    }
}

/// A node just registered, with its token: shown this once.
// Sent through `sorted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedNode {
    #[serde(flatten)]
    pub node: NodeView,
    pub token: String,
}

/// A role with the names of the roles it requires.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    #[schema(schema_with = jig_kind)]
    pub jig: JigKind,
    pub discovery: bool,
    pub implicit: bool,
    pub destructive: bool,
    pub cluster: bool,
    pub admin_only: bool,
    pub priority: bool,
    pub data: Value,
    pub scripts: Value,
    pub description: String,
    pub requires: Vec<String>,
}

impl From<db::roles::RoleView> for RoleView {
    fn from(view: db::roles::RoleView) -> Self {
        let role = view.role;
        Self {
            id: role.id,
            name: role.name,
            jig: role.jig,
            discovery: role.discovery,
            implicit: role.implicit,
            destructive: role.destructive,
            cluster: role.cluster,
            admin_only: role.admin_only,
            priority: role.priority,
            data: role.data,
            scripts: role.scripts,
            description: role.description,
            requires: view.requires,
        }
    }
}

/// What a node can boot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BootenvView {
    pub id: i64,
    pub name: String,
    #[schema(schema_with = bootenv_kind)]
    pub kind: BootenvKind,
    pub kernel: String,
    pub initrd: String,
    pub append: String,
    pub template: String,
    pub description: String,
}

impl From<bootenv::Model> for BootenvView {
    fn from(row: bootenv::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            kind: row.kind,
            kernel: row.kernel,
            initrd: row.initrd,
            append: row.append,
            template: row.template,
            description: row.description,
        }
    }
}

/// A deployment with its observed state (`active` or `error` once
/// committed, read off its noderoles).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeploymentView {
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    #[schema(schema_with = deployment_state)]
    pub state: DeploymentState,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<deployment::Model> for DeploymentView {
    fn from(row: deployment::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            parent_id: row.parent_id,
            state: row.state,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A noderole in a list: its state with the names of its node, role and
/// deployment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoderoleRefView {
    pub id: i64,
    pub node_id: i64,
    pub role_id: i64,
    pub deployment_id: i64,
    #[schema(schema_with = noderole_state)]
    pub state: NoderoleState,
    pub run_count: i32,
    pub node: String,
    pub role: String,
    pub deployment: String,
}

impl From<db::noderoles::NoderoleRef> for NoderoleRefView {
    fn from(row: db::noderoles::NoderoleRef) -> Self {
        Self {
            id: row.id,
            node_id: row.node_id,
            role_id: row.role_id,
            deployment_id: row.deployment_id,
            state: row.state,
            run_count: row.run_count,
            node: row.node,
            role: row.role,
            deployment: row.deployment,
        }
    }
}

/// One noderole in full: data, wall, runlog and parents.
// Sent through `sorted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoderoleDetail {
    pub id: i64,
    pub node_id: i64,
    pub role_id: i64,
    pub deployment_id: i64,
    #[schema(schema_with = noderole_state)]
    pub state: NoderoleState,
    /// How many parents are not active yet.
    pub unmet_parents: i32,
    pub run_count: i32,
    pub proposed_data: Value,
    pub committed_data: Value,
    pub wall: Value,
    pub runlog: String,
    pub cohort: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub deployment: Option<String>,
    /// Ids of the noderoles this one waits for.
    pub parents: Vec<i64>,
}

impl NoderoleDetail {
    /// The row, its names (none if it vanished meanwhile) and its parents.
    pub fn new(
        row: noderole::Model,
        names: Option<db::noderoles::NoderoleRef>,
        parents: Vec<i64>,
    ) -> Self {
        let (node, role, deployment) = match names {
            Some(r) => (Some(r.node), Some(r.role), Some(r.deployment)),
            None => (None, None, None),
        };
        Self {
            id: row.id,
            node_id: row.node_id,
            role_id: row.role_id,
            deployment_id: row.deployment_id,
            state: row.state,
            unmet_parents: row.unmet_parents,
            run_count: row.run_count,
            proposed_data: row.proposed_data,
            committed_data: row.committed_data,
            wall: row.wall,
            runlog: row.runlog,
            cohort: row.cohort,
            created_at: row.created_at,
            updated_at: row.updated_at,
            node,
            role,
            deployment,
            parents,
        }
    }
}

/// A run in a list, with its node's and role's names and, while queued,
/// its place in the scheduler's line.
// Sent through `sorted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub id: i64,
    pub noderole_id: i64,
    pub node_id: i64,
    pub reason: String,
    #[schema(schema_with = run_state)]
    pub state: RunState,
    pub priority: bool,
    pub queue_seq: i64,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// 1 is next; null unless waiting for a slot.
    pub position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub role: Option<String>,
}

impl RunView {
    /// The row with its position and its node's and role's names, if known.
    pub fn new(row: run::Model, position: Option<usize>, names: Option<(String, String)>) -> Self {
        let (node, role) = names.unzip();
        Self {
            id: row.id,
            noderole_id: row.noderole_id,
            node_id: row.node_id,
            reason: row.reason,
            state: row.state,
            priority: row.priority,
            queue_seq: row.queue_seq,
            queued_at: row.queued_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            error: row.error,
            position,
            node,
            role,
        }
    }
}

/// One run with its noderole's runlog.
// Sent through `sorted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    pub id: i64,
    pub noderole_id: i64,
    pub node_id: i64,
    pub reason: String,
    #[schema(schema_with = run_state)]
    pub state: RunState,
    pub priority: bool,
    pub queue_seq: i64,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub runlog: String,
}

impl RunDetail {
    pub fn new(row: run::Model, runlog: String) -> Self {
        Self {
            id: row.id,
            noderole_id: row.noderole_id,
            node_id: row.node_id,
            reason: row.reason,
            state: row.state,
            priority: row.priority,
            queue_seq: row.queue_seq,
            queued_at: row.queued_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            error: row.error,
            runlog,
        }
    }
}

/// Whether the cluster has settled, with noderole counts by state.
// Sent through `sorted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnnealView {
    /// Nothing is todo or in transition, and no run is queued or running.
    pub settled: bool,
    /// Every noderole state, with 0 for the empty ones.
    pub counts: BTreeMap<&'static str, i64>,
    /// Why the todo noderoles have not started.
    pub waiting: WaitingView,
    pub annealer: AnnealerStatus,
    pub runs: RunCounts,
}

/// Todo noderoles by why they wait; one waiting for several reasons counts
/// under each, so a newcomer whose nodes are not alive sees it at once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitingView {
    /// Noderoles in todo.
    pub todo: i64,
    /// Todo on a node that is not alive (cluster-file nodes start so).
    pub node_not_alive: i64,
    /// Todo on a node marked not available.
    pub node_not_available: i64,
    /// Todo with a parent noderole that is not active yet.
    pub parents_not_active: i64,
    /// Todo in a deployment that is not committed.
    pub deployment_not_committed: i64,
    /// Todo with none of the reasons above: the annealer starts them next.
    pub ready: i64,
}

impl From<db::noderoles::WaitingCounts> for WaitingView {
    fn from(w: db::noderoles::WaitingCounts) -> Self {
        Self {
            todo: w.todo,
            node_not_alive: w.node_not_alive,
            node_not_available: w.node_not_available,
            parents_not_active: w.parents_not_active,
            deployment_not_committed: w.deployment_not_committed,
            ready: w.ready,
        }
    }
}

impl AnnealView {
    pub fn new(status: &AnnealStatus) -> Self {
        let mut by_state: BTreeMap<&'static str, i64> =
            NoderoleState::iter().map(|s| (s.as_str(), 0)).collect();
        for (s, n) in &status.counts {
            by_state.insert(s.as_str(), *n);
        }
        Self {
            settled: status.settled,
            counts: by_state,
            waiting: status.waiting.into(),
            annealer: status.annealer.clone(),
            runs: status.runs,
        }
    }
}

/// `/health`: kiln and its database answer.
// Sent through `sorted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub version: &'static str,
}

impl HealthView {
    pub fn ok(backend: Backend) -> Self {
        Self {
            status: "ok",
            database: match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            },
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Every error answer: `{"error":{"code","message","field"}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(schema_with = error_code)]
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
}

/// The codes [`super::error`] writes.
fn error_code() -> Object {
    named(
        [
            "bad_request",
            "invalid",
            "unauthorized",
            "forbidden",
            "not_found",
            "method_not_allowed",
            "conflict",
            "too_large",
            "unsupported_media_type",
            "unavailable",
            "internal",
        ]
        .into_iter(),
    )
}
