//! Bootenvs: what a node network-boots into next.

use entity::bootenv;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{RepoError, RepoResult};
pub use entity::states::BootenvKind;

/// A bootenv as cluster files declare it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootenvSpec {
    pub name: String,
    pub kind: BootenvKind,
    pub kernel: String,
    pub initrd: String,
    pub append: String,
    pub template: String,
    pub description: String,
}

/// One bootenv by name.
pub async fn get<C: ConnectionTrait>(db: &C, name: &str) -> RepoResult<bootenv::Model> {
    bootenv::Entity::find()
        .filter(bootenv::Column::Name.eq(name))
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("bootenv", name))
}

/// Whether the bootenv named `name` boots the node from its own disk (its
/// kind is `local`, whatever it is called).
pub async fn boots_from_disk<C: ConnectionTrait>(db: &C, name: &str) -> RepoResult<bool> {
    Ok(get(db, name).await?.kind == BootenvKind::Local)
}

/// Every bootenv by name.
pub async fn list<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<bootenv::Model>> {
    Ok(bootenv::Entity::find()
        .order_by_asc(bootenv::Column::Name)
        .all(db)
        .await?)
}

/// Creates or updates a bootenv; returns the row and whether it changed.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    spec: &BootenvSpec,
) -> RepoResult<(bootenv::Model, bool)> {
    let existing = bootenv::Entity::find()
        .filter(bootenv::Column::Name.eq(spec.name.as_str()))
        .one(db)
        .await?;
    let mut active = match &existing {
        Some(row) => bootenv::ActiveModel::from(row.clone()),
        None => bootenv::ActiveModel {
            name: Set(spec.name.clone()),
            ..Default::default()
        },
    };
    active.kind = Set(spec.kind);
    active.kernel = Set(spec.kernel.clone());
    active.initrd = Set(spec.initrd.clone());
    active.append = Set(spec.append.clone());
    active.template = Set(spec.template.clone());
    active.description = Set(spec.description.clone());
    match existing {
        Some(before) if !active.is_changed() => Ok((before, false)),
        Some(before) => {
            let after = active.update(db).await?;
            let changed = after != before;
            Ok((after, changed))
        }
        None => Ok((
            active
                .insert(db)
                .await
                .map_err(|e| RepoError::from_write(e, "bootenv", spec.name.clone()))?,
            true,
        )),
    }
}
