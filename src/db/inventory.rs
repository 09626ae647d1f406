//! Node inventories: the hardware a machine last reported from its
//! discovery image, one row per node (a new report replaces the old one),
//! with its memory and disk count as columns so node lists can filter on
//! them without reading the documents.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use entity::{node, node_inventory};
use sea_orm::sea_query::{OnConflict, Query, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::{now, RepoError, RepoResult};

/// A report to keep: the checked document and the numbers lists filter on.
#[derive(Debug, Clone)]
pub struct NewInventory {
    pub node_id: i64,
    pub document: serde_json::Value,
    pub memory_mib: i64,
    pub disk_count: i32,
}

/// Keeps a node's inventory, stamped with the time it was received,
/// replacing the one before; returns the stored row.
pub async fn store<C: ConnectionTrait>(
    db: &C,
    new: &NewInventory,
) -> RepoResult<node_inventory::Model> {
    // Whole microseconds, as both databases keep them, so the row returned
    // here is the row read back later.
    let received_at = now().trunc_subsecs(6);
    let row = node_inventory::ActiveModel {
        node_id: Set(new.node_id),
        document: Set(new.document.clone()),
        memory_mib: Set(new.memory_mib),
        disk_count: Set(new.disk_count),
        received_at: Set(received_at),
    };
    node_inventory::Entity::insert(row)
        .on_conflict(
            OnConflict::column(node_inventory::Column::NodeId)
                .update_columns([
                    node_inventory::Column::Document,
                    node_inventory::Column::MemoryMib,
                    node_inventory::Column::DiskCount,
                    node_inventory::Column::ReceivedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(
            |e| match RepoError::from_write(e, "inventory", new.node_id.to_string()) {
                RepoError::ForeignKey { .. } => RepoError::not_found("node", new.node_id),
                other => other,
            },
        )?;
    Ok(node_inventory::Model {
        node_id: new.node_id,
        document: new.document.clone(),
        memory_mib: new.memory_mib,
        disk_count: new.disk_count,
        received_at,
    })
}

/// A node's inventory, if it ever reported one.
pub async fn of_node<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
) -> RepoResult<Option<node_inventory::Model>> {
    Ok(node_inventory::Entity::find_by_id(node_id).one(db).await?)
}

/// The inventories of these nodes, by node id, in one query.
pub async fn of_nodes<C: ConnectionTrait>(
    db: &C,
    node_ids: &[i64],
) -> RepoResult<HashMap<i64, node_inventory::Model>> {
    if node_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(node_inventory::Entity::find()
        .filter(node_inventory::Column::NodeId.is_in(node_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.node_id, row))
        .collect())
}

/// When the node's inventory was received, and when the node last came
/// back alive (either may be unknown): what the inventory role compares.
pub async fn freshness<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
) -> RepoResult<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let node = node::Entity::find_by_id(node_id)
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("node", node_id))?;
    let received = of_node(db, node_id).await?.map(|row| row.received_at);
    Ok((received, node.alive_since))
}

/// A condition on `node.id`: the node reported at least `min_memory_mib`
/// of memory and at least `min_disks` disks (what is `None` is not asked).
pub(crate) fn hardware_condition(
    min_memory_mib: Option<i64>,
    min_disks: Option<i32>,
) -> SimpleExpr {
    let mut select = Query::select();
    select
        .column(node_inventory::Column::NodeId)
        .from(node_inventory::Entity);
    if let Some(mib) = min_memory_mib {
        select.and_where(node_inventory::Column::MemoryMib.gte(mib));
    }
    if let Some(disks) = min_disks {
        select.and_where(node_inventory::Column::DiskCount.gte(disks));
    }
    node::Column::Id.in_subquery(select.to_owned())
}
