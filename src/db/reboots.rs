//! Scheduled reboots: one row per reboot a run scheduled, written in the
//! transaction that records the run's result and removed once the reboot
//! was performed, so a kiln that crashes in between performs it after its
//! restart.

use chrono::{DateTime, Utc};
use entity::reboot;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{now, RepoError, RepoResult};

/// A reboot to schedule.
#[derive(Debug, Clone)]
pub struct NewReboot {
    pub node_id: i64,
    /// The noderole that answers for the machine's return.
    pub noderole_id: i64,
    pub due_at: DateTime<Utc>,
    pub reason: String,
}

/// A reboot not performed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingReboot {
    pub id: i64,
    pub node_id: i64,
    pub noderole_id: Option<i64>,
    pub due_at: DateTime<Utc>,
    pub reason: String,
}

impl From<reboot::Model> for PendingReboot {
    fn from(row: reboot::Model) -> Self {
        Self {
            id: row.id,
            node_id: row.node_id,
            noderole_id: row.noderole_id,
            due_at: row.due_at,
            reason: row.reason,
        }
    }
}

/// Records a reboot; returns its id.
pub async fn schedule<C: ConnectionTrait>(db: &C, new: &NewReboot) -> RepoResult<i64> {
    let row = reboot::ActiveModel {
        node_id: Set(new.node_id),
        noderole_id: Set(Some(new.noderole_id)),
        due_at: Set(new.due_at),
        reason: Set(new.reason.clone()),
        created_at: Set(now()),
        ..Default::default()
    };
    let inserted = reboot::Entity::insert(row)
        .exec(db)
        .await
        .map_err(|e| RepoError::from_write(e, "reboot", new.node_id.to_string()))?;
    Ok(inserted.last_insert_id)
}

/// Every reboot not performed yet, soonest first (what a starting kiln
/// owes its machines).
pub async fn pending<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<PendingReboot>> {
    Ok(reboot::Entity::find()
        .order_by_asc(reboot::Column::DueAt)
        .order_by_asc(reboot::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(PendingReboot::from)
        .collect())
}

/// A node's reboots not performed yet, soonest first.
pub async fn pending_of_node<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
) -> RepoResult<Vec<PendingReboot>> {
    Ok(reboot::Entity::find()
        .filter(reboot::Column::NodeId.eq(node_id))
        .order_by_asc(reboot::Column::DueAt)
        .order_by_asc(reboot::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(PendingReboot::from)
        .collect())
}

/// A reboot was performed: its row goes. False when it was gone already
/// (its node was deleted meanwhile).
pub async fn performed<C: ConnectionTrait>(db: &C, id: i64) -> RepoResult<bool> {
    let done = reboot::Entity::delete_by_id(id).exec(db).await?;
    Ok(done.rows_affected > 0)
}
