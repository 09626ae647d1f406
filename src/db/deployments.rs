//! Deployments: the tree of groupings noderoles are committed in.

use entity::deployment;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{now, Key, RepoError, RepoResult};
pub use entity::states::DeploymentState;

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
        state: Set(DeploymentState::Proposed),
        description: Set(description.to_string()),
        created_at: Set(stamp),
        updated_at: Set(stamp),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| RepoError::from_write(e, "deployment", name))
}

/// The deployment as an operator sees it. Only `proposed` and `committed`
/// are stored (the operator's intent); a committed deployment reads as
/// `error` while any of its noderoles is in error and `active` once all
/// are active. Deriving it on read, rather than writing it on every
/// noderole move, means concurrent runs never race to settle it and a
/// transition never pays for it.
pub async fn observed<C: ConnectionTrait>(
    db: &C,
    mut row: deployment::Model,
) -> RepoResult<deployment::Model> {
    use crate::db::noderoles::{any_of_deployment, StateTest};
    use entity::states::NoderoleState;
    if row.state == DeploymentState::Proposed {
        return Ok(row);
    }
    let state = if any_of_deployment(db, row.id, StateTest::In(NoderoleState::Error)).await? {
        DeploymentState::Error
    } else if any_of_deployment(db, row.id, StateTest::NotIn(NoderoleState::Active)).await? {
        DeploymentState::Committed
    } else {
        DeploymentState::Active
    };
    row.state = state;
    Ok(row)
}

/// [`get`] with the observed state.
pub async fn get_observed<C: ConnectionTrait>(db: &C, key: &Key) -> RepoResult<deployment::Model> {
    observed(db, get(db, key).await?).await
}

/// [`list`] with observed states.
pub async fn list_observed<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<deployment::Model>> {
    let mut rows = Vec::new();
    for row in list(db).await? {
        rows.push(observed(db, row).await?);
    }
    Ok(rows)
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
    active.state = Set(state);
    active.updated_at = Set(now());
    Ok(active.update(db).await?)
}
