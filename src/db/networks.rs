//! Networks: subnets, routers, DNS and the pool for unknown machines.

use entity::network;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{RepoError, RepoResult};

/// A network as cluster files declare it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: String,
    pub router: Option<String>,
    pub dns: Vec<String>,
    pub domain: String,
    pub pool: Option<(String, String)>,
    pub lease_secs: i32,
}

/// Every network, in the order they were first declared (id order): the
/// DHCP server answers from the first that matches.
pub async fn list<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<network::Model>> {
    Ok(network::Entity::find()
        .order_by_asc(network::Column::Id)
        .all(db)
        .await?)
}

/// Creates or updates a network; returns whether it changed.
pub async fn upsert<C: ConnectionTrait>(db: &C, spec: &NetworkSpec) -> RepoResult<bool> {
    let existing = network::Entity::find()
        .filter(network::Column::Name.eq(spec.name.as_str()))
        .one(db)
        .await?;
    let mut active = match &existing {
        Some(row) => network::ActiveModel::from(row.clone()),
        None => network::ActiveModel {
            name: Set(spec.name.clone()),
            ..Default::default()
        },
    };
    active.subnet = Set(spec.subnet.clone());
    active.router = Set(spec.router.clone());
    active.dns = Set(serde_json::json!(spec.dns));
    active.domain = Set(spec.domain.clone());
    active.pool_start = Set(spec.pool.as_ref().map(|p| p.0.clone()));
    active.pool_end = Set(spec.pool.as_ref().map(|p| p.1.clone()));
    active.lease_secs = Set(spec.lease_secs);
    match existing {
        Some(before) if !active.is_changed() => {
            let _ = before;
            Ok(false)
        }
        Some(before) => Ok(active.update(db).await? != before),
        None => {
            active
                .insert(db)
                .await
                .map_err(|e| RepoError::from_write(e, "network", spec.name.clone()))?;
            Ok(true)
        }
    }
}
