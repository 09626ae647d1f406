//! Hosts: what kiln's DHCP server and the exported host files and zones
//! hand out, one row per node interface with an address.

use sea_orm::{ConnectionTrait, FromQueryResult, Statement, Value};

use super::sql::placeholders;
use super::RepoResult;
use entity::states::BootenvKind;

/// One host line's worth of facts.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct HostEntry {
    /// The node's name.
    pub name: String,
    pub mac: String,
    pub ip: String,
    /// The node's bootenv boots from disk (its kind is `local`).
    pub local_boot: bool,
}

/// Every interface with an address, in interface order, with its node's
/// name and whether the node's bootenv boots from disk: one query.
pub async fn list<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<HostEntry>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT n.name AS name, i.mac AS mac, i.ip AS ip, \
         COALESCE(b.kind = {}, FALSE) AS local_boot \
         FROM interface i JOIN node n ON n.id = i.node_id \
         LEFT JOIN bootenv b ON b.name = n.bootenv \
         WHERE i.ip IS NOT NULL ORDER BY i.id",
        placeholders(backend, 1, 1)
    );
    Ok(HostEntry::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [Value::from(BootenvKind::Local)],
    ))
    .all(db)
    .await?)
}
