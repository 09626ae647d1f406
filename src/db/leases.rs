//! Leases: the pool addresses kiln's DHCP server handed to machines it did
//! not know yet. A lease is written before its ACK leaves (`record_acked`,
//! many per transaction), and a starting kiln reads the live ones back
//! (`live`), so no address acknowledged to one MAC is ever offered to
//! another, across restarts too.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::lease;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionSession, TransactionTrait,
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

/// Keeps every lease in `leases` in one transaction of two statements
/// (one flush for a whole burst of ACKs): each MAC's one row, written anew;
/// a row another MAC held on one of these addresses goes (the server hands
/// an address on only once its holder's lease lapsed or was released).
/// A MAC or address that comes twice (a retransmitted REQUEST) counts once,
/// the last one.
pub async fn record_acked<C: TransactionTrait>(db: &C, leases: &[AckedLease]) -> RepoResult<()> {
    let mut by_mac: HashMap<&str, &AckedLease> = HashMap::new();
    let mut by_ip: HashMap<&str, &AckedLease> = HashMap::new();
    for acked in leases {
        by_mac.insert(&acked.mac, acked);
    }
    for acked in by_mac.values() {
        by_ip.insert(&acked.ip, acked);
    }
    let rows: Vec<lease::ActiveModel> = by_ip
        .values()
        .map(|acked| lease::ActiveModel {
            mac: Set(acked.mac.clone()),
            ip: Set(acked.ip.clone()),
            hostname: Set(acked.hostname.clone()),
            expires_at: Set(acked.expires_at),
            ..Default::default()
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await?;
    lease::Entity::delete_many()
        .filter(
            Condition::any()
                .add(lease::Column::Mac.is_in(by_ip.values().map(|a| a.mac.clone())))
                .add(lease::Column::Ip.is_in(by_ip.keys().map(|ip| ip.to_string()))),
        )
        .exec(&txn)
        .await?;
    lease::Entity::insert_many(rows)
        .exec_without_returning(&txn)
        .await
        .map_err(|e| RepoError::from_write(e, "lease", "acknowledged batch"))?;
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

/// A page of leases, in the order they were last acknowledged.
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
