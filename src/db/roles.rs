//! Roles and their requirements.

use std::collections::HashMap;

use entity::{role, role_requirement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{Key, RepoError, RepoResult};
pub use entity::states::JigKind;

/// A role as cluster files declare it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    pub name: String,
    pub jig: JigKind,
    pub requires: Vec<String>,
    pub discovery: bool,
    pub implicit: bool,
    pub destructive: bool,
    pub cluster: bool,
    pub admin_only: bool,
    pub priority: bool,
    pub data: serde_json::Value,
    pub scripts: Vec<String>,
    pub description: String,
}

impl RoleSpec {
    /// A role with no flags, data or scripts.
    pub fn new(name: &str, jig: JigKind, requires: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            jig,
            requires: requires.iter().map(|r| r.to_string()).collect(),
            discovery: false,
            implicit: false,
            destructive: false,
            cluster: false,
            admin_only: false,
            priority: false,
            data: serde_json::json!({}),
            scripts: Vec::new(),
            description: String::new(),
        }
    }
}

/// A role with its requirement names.
#[derive(Debug, Clone)]
pub struct RoleView {
    pub role: role::Model,
    pub requires: Vec<String>,
}

/// One role by id or name.
pub async fn get<C: ConnectionTrait>(db: &C, key: &Key) -> RepoResult<role::Model> {
    let query = match key {
        Key::Id(id) => role::Entity::find_by_id(*id),
        Key::Name(name) => role::Entity::find().filter(role::Column::Name.eq(name.as_str())),
    };
    query
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("role", key))
}

/// Names of the roles `role_id` requires.
pub async fn requirements<C: ConnectionTrait>(db: &C, role_id: i64) -> RepoResult<Vec<String>> {
    Ok(role_requirement::Entity::find()
        .filter(role_requirement::Column::RoleId.eq(role_id))
        .order_by_asc(role_requirement::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.requires)
        .collect())
}

/// Every role with its requirements, in two queries.
pub async fn list<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<RoleView>> {
    let roles = role::Entity::find()
        .order_by_asc(role::Column::Id)
        .all(db)
        .await?;
    let mut reqs: HashMap<i64, Vec<String>> = HashMap::new();
    for r in role_requirement::Entity::find()
        .order_by_asc(role_requirement::Column::Id)
        .all(db)
        .await?
    {
        reqs.entry(r.role_id).or_default().push(r.requires);
    }
    Ok(roles
        .into_iter()
        .map(|role| RoleView {
            requires: reqs.remove(&role.id).unwrap_or_default(),
            role,
        })
        .collect())
}

/// Roles flagged `discovery`: bound to every new non-admin node.
pub async fn discovery<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<role::Model>> {
    Ok(role::Entity::find()
        .filter(role::Column::Discovery.eq(true))
        .order_by_asc(role::Column::Id)
        .all(db)
        .await?)
}

/// Creates or updates a role to match `spec`, requirements included.
/// Returns the row and whether anything changed. Call inside a transaction.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    spec: &RoleSpec,
) -> RepoResult<(role::Model, bool)> {
    let existing = role::Entity::find()
        .filter(role::Column::Name.eq(spec.name.as_str()))
        .one(db)
        .await?;
    let scripts = serde_json::to_value(&spec.scripts).expect("strings serialise");
    let mut active = match &existing {
        Some(row) => role::ActiveModel::from(row.clone()),
        None => role::ActiveModel {
            name: Set(spec.name.clone()),
            ..Default::default()
        },
    };
    active.jig = Set(spec.jig);
    active.discovery = Set(spec.discovery);
    active.implicit = Set(spec.implicit);
    active.destructive = Set(spec.destructive);
    active.cluster = Set(spec.cluster);
    active.admin_only = Set(spec.admin_only);
    active.priority = Set(spec.priority);
    active.data = Set(spec.data.clone());
    active.scripts = Set(scripts);
    active.description = Set(spec.description.clone());
    let (row, mut changed) = match existing {
        Some(before) => {
            let after = if active.is_changed() {
                active.update(db).await?
            } else {
                before.clone()
            };
            let changed = after != before;
            (after, changed)
        }
        None => (
            active
                .insert(db)
                .await
                .map_err(|e| RepoError::from_write(e, "role", spec.name.clone()))?,
            true,
        ),
    };
    let current = requirements(db, row.id).await?;
    if current != spec.requires {
        role_requirement::Entity::delete_many()
            .filter(role_requirement::Column::RoleId.eq(row.id))
            .exec(db)
            .await?;
        for requires in &spec.requires {
            role_requirement::ActiveModel {
                role_id: Set(row.id),
                requires: Set(requires.clone()),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
        changed = true;
    }
    Ok((row, changed))
}
