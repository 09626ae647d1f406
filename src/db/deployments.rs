//! Deployments: the tree of groupings noderoles are committed in.

use entity::deployment;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{now, Key, RepoError, RepoResult};

/// Lifecycle of a deployment (stored as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Proposed,
    Committed,
    Active,
    Error,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Proposed => "proposed",
            DeploymentState::Committed => "committed",
            DeploymentState::Active => "active",
            DeploymentState::Error => "error",
        }
    }
}

/// One deployment by id or name.
pub async fn get<C: ConnectionTrait>(db: &C, key: &Key) -> RepoResult<deployment::Model> {
    let query = match key {
        Key::Id(id) => deployment::Entity::find_by_id(*id),
        Key::Name(name) => {
            deployment::Entity::find().filter(deployment::Column::Name.eq(name.as_str()))
        }
    };
    query
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("deployment", key))
}

/// One deployment by id, its row locked until the transaction ends
/// (`FOR UPDATE` on PostgreSQL; SQLite already serialises writers), so
/// concurrent runs settling the same deployment take turns and the last one
/// sees every other's committed noderole states.
pub async fn get_locked<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<deployment::Model> {
    deployment::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("deployment", Key::Id(id)))
}

/// Creates a deployment under `parent` (default `system`), proposed.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    name: &str,
    parent: Option<&str>,
    description: &str,
) -> RepoResult<deployment::Model> {
    if name.trim().is_empty() || name.parse::<i64>().is_ok() {
        return Err(RepoError::Invalid {
            field: "name".into(),
            reason: "must be a non-empty name that is not all digits".into(),
        });
    }
    let parent = get(db, &Key::Name(parent.unwrap_or("system").to_string()))
        .await
        .map_err(|e| match e {
            RepoError::NotFound { key, .. } => RepoError::Invalid {
                field: "parent".into(),
                reason: format!("deployment `{key}` not found"),
            },
            other => other,
        })?;
    let stamp = now();
    deployment::ActiveModel {
        name: Set(name.to_string()),
        parent_id: Set(Some(parent.id)),
        state: Set(DeploymentState::Proposed.as_str().into()),
        description: Set(description.to_string()),
        created_at: Set(stamp),
        updated_at: Set(stamp),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| RepoError::from_write(e, "deployment", name))
}

/// Every deployment, parents before children (by id).
pub async fn list<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<deployment::Model>> {
    Ok(deployment::Entity::find()
        .order_by_asc(deployment::Column::Id)
        .all(db)
        .await?)
}

/// The deployment and its ancestors, nearest first (for requirement lookup).
pub async fn ancestry<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<Vec<deployment::Model>> {
    let mut chain = Vec::new();
    let mut next = Some(id);
    while let Some(id) = next {
        let row = get(db, &Key::Id(id)).await?;
        next = row.parent_id;
        chain.push(row);
        if chain.len() > 64 {
            return Err(RepoError::Conflict("deployment tree is too deep".into()));
        }
    }
    Ok(chain)
}

/// Sets a deployment's state.
pub async fn set_state<C: ConnectionTrait>(
    db: &C,
    id: i64,
    state: DeploymentState,
) -> RepoResult<deployment::Model> {
    let row = get(db, &Key::Id(id)).await?;
    let mut active: deployment::ActiveModel = row.into();
    active.state = Set(state.as_str().into());
    active.updated_at = Set(now());
    Ok(active.update(db).await?)
}
