//! Leases: the pool addresses kiln's DHCP server handed to machines it did
//! not know yet. A lease is written before its ACK leaves (`record_acked`,
//! many per transaction), and a starting kiln reads the live ones back
//! (`live`), so no address acknowledged to one MAC is ever offered to
//! another, across restarts too.

use chrono::{DateTime, Utc};
use entity::lease;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionSession, TransactionTrait,
};

use super::{RepoError, RepoResult};

/// A lease the DHCP server is about to acknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedLease {
    pub mac: String,
    pub ip: String,
    pub hostname: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Keeps every lease in `leases` in one transaction (one flush for a whole
/// burst of ACKs): each MAC's one row, created or moved; a row another MAC
/// held on the same address goes (the server hands an address on only once
/// its holder's lease lapsed or was released).
pub async fn record_acked<C: TransactionTrait>(db: &C, leases: &[AckedLease]) -> RepoResult<()> {
    let txn = db.begin().await?;
    for acked in leases {
        lease::Entity::delete_many()
            .filter(lease::Column::Ip.eq(&acked.ip))
            .filter(lease::Column::Mac.ne(&acked.mac))
            .exec(&txn)
            .await?;
        let row = lease::ActiveModel {
            mac: Set(acked.mac.clone()),
            ip: Set(acked.ip.clone()),
            hostname: Set(acked.hostname.clone()),
            expires_at: Set(acked.expires_at),
            ..Default::default()
        };
        lease::Entity::insert(row)
            .on_conflict(
                OnConflict::column(lease::Column::Mac)
                    .update_columns([
                        lease::Column::Ip,
                        lease::Column::Hostname,
                        lease::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(|e| RepoError::from_write(e, "lease", acked.mac.clone()))?;
    }
    txn.commit().await?;
    Ok(())
}

/// Every lease that has not expired at `now`: what a starting DHCP server
/// holds again.
pub async fn live<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> RepoResult<Vec<lease::Model>> {
    Ok(lease::Entity::find()
        .filter(lease::Column::ExpiresAt.gt(now))
        .order_by_asc(lease::Column::Id)
        .all(db)
        .await?)
}

/// Which leases to list.
#[derive(Debug, Clone, Default)]
pub struct LeaseFilter {
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub limit: u64,
    pub offset: u64,
}

/// A page of leases, in address-assignment order.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    filter: &LeaseFilter,
) -> RepoResult<Vec<lease::Model>> {
    let mut query = lease::Entity::find().order_by_asc(lease::Column::Id);
    if let Some(mac) = &filter.mac {
        query = query.filter(lease::Column::Mac.eq(mac));
    }
    if let Some(ip) = &filter.ip {
        query = query.filter(lease::Column::Ip.eq(ip));
    }
    Ok(query
        .offset(filter.offset)
        .limit(filter.limit)
        .all(db)
        .await?)
}
