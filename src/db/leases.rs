//! Leases: the pool addresses kiln's DHCP server handed to machines it did
//! not know yet.

use chrono::{DateTime, Utc};
use entity::lease;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::{RepoError, RepoResult};

/// Records that `mac` holds `ip` until `expires_at` under `hostname`: its
/// one lease, created or updated.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    mac: &str,
    ip: &str,
    hostname: Option<String>,
    expires_at: DateTime<Utc>,
) -> RepoResult<()> {
    let existing = lease::Entity::find()
        .filter(lease::Column::Mac.eq(mac))
        .one(db)
        .await?;
    let mut row = match existing {
        Some(row) => lease::ActiveModel::from(row),
        None => lease::ActiveModel {
            mac: Set(mac.to_string()),
            ..Default::default()
        },
    };
    row.ip = Set(ip.to_string());
    row.hostname = Set(hostname);
    row.expires_at = Set(expires_at);
    row.save(db)
        .await
        .map_err(|e| RepoError::from_write(e, "lease", mac))?;
    Ok(())
}
