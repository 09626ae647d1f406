//! Nodes' BMCs: how to reach each one and the power state it last
//! reported. The password is stored only sealed (`bmc::secret`); this
//! module never sees it in the clear.

use chrono::{DateTime, Utc};
use entity::node_bmc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::{now, RepoError, RepoResult};

/// What to do with the stored password when a BMC is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordWrite {
    /// Leave the stored one (a change of address keeps the credentials).
    Keep,
    /// Store this sealed value.
    Sealed(String),
    /// Store none.
    Clear,
}

/// A node's BMC as the operator sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcWrite {
    pub driver: String,
    pub address: String,
    pub username: String,
    pub password: PasswordWrite,
    pub system: Option<String>,
    pub verify_tls: bool,
}

/// The BMC of `node_id`, if it has one.
pub async fn get<C: ConnectionTrait>(db: &C, node_id: i64) -> RepoResult<Option<node_bmc::Model>> {
    Ok(node_bmc::Entity::find_by_id(node_id).one(db).await?)
}

/// The BMCs of `node_ids` (those that have one).
pub async fn of_nodes<C: ConnectionTrait>(
    db: &C,
    node_ids: &[i64],
) -> RepoResult<Vec<node_bmc::Model>> {
    if node_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(node_bmc::Entity::find()
        .filter(node_bmc::Column::NodeId.is_in(node_ids.iter().copied()))
        .all(db)
        .await?)
}

/// Writes (creates or replaces) the BMC of `node_id`.
pub async fn put<C: ConnectionTrait>(db: &C, node_id: i64, write: &BmcWrite) -> RepoResult<()> {
    let existing = get(db, node_id).await?;
    let password_sealed = match (&write.password, &existing) {
        (PasswordWrite::Keep, Some(row)) => row.password_sealed.clone(),
        (PasswordWrite::Keep, None) | (PasswordWrite::Clear, _) => None,
        (PasswordWrite::Sealed(sealed), _) => Some(sealed.clone()),
    };
    let mut row = node_bmc::ActiveModel {
        node_id: Set(node_id),
        driver: Set(write.driver.clone()),
        address: Set(write.address.clone()),
        username: Set(write.username.clone()),
        password_sealed: Set(password_sealed),
        system: Set(write.system.clone()),
        verify_tls: Set(write.verify_tls),
        updated_at: Set(now()),
        ..Default::default()
    };
    let result = match existing {
        Some(old) => {
            // A BMC that now points elsewhere has not been asked yet.
            let moved = old.driver != write.driver || old.address != write.address;
            if moved {
                row.power_state = Set("unknown".into());
                row.power_checked_at = Set(None);
                row.power_error = Set(None);
                row.powered_on_at = Set(None);
            }
            row.update(db).await.map(|_| ())
        }
        None => {
            row.power_state = Set("unknown".into());
            node_bmc::Entity::insert(row).exec(db).await.map(|_| ())
        }
    };
    result.map_err(|e| RepoError::from_write(e, "bmc", node_id.to_string()))
}

/// Removes the BMC of `node_id` (none: nothing to do).
pub async fn remove<C: ConnectionTrait>(db: &C, node_id: i64) -> RepoResult<()> {
    node_bmc::Entity::delete_by_id(node_id).exec(db).await?;
    Ok(())
}

/// Records what the BMC reported; returns the state stored before, so the
/// caller knows whether the power state changed.
pub async fn record_power<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    state: &str,
    error: Option<String>,
    checked_at: DateTime<Utc>,
) -> RepoResult<Option<String>> {
    let Some(before) = get(db, node_id).await? else {
        return Ok(None);
    };
    let previous = before.power_state.clone();
    let mut row: node_bmc::ActiveModel = before.into();
    row.power_state = Set(state.to_string());
    row.power_error = Set(error);
    row.power_checked_at = Set(Some(checked_at));
    row.update(db).await?;
    Ok(Some(previous))
}

/// Records that kiln powered the machine of `node_id` on (or cycled it)
/// at `at`: enrolment takes only a machine that appeared after that.
pub async fn record_powered_on<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    at: DateTime<Utc>,
) -> RepoResult<()> {
    node_bmc::Entity::update_many()
        .col_expr(node_bmc::Column::PoweredOnAt, Some(at).into())
        .filter(node_bmc::Column::NodeId.eq(node_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Every BMC kiln can ask (a driver other than `none`), in node order:
/// what the power poller walks.
pub async fn pollable<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<node_bmc::Model>> {
    Ok(node_bmc::Entity::find()
        .filter(node_bmc::Column::Driver.ne("none"))
        .order_by_asc(node_bmc::Column::NodeId)
        .all(db)
        .await?)
}

/// One stored sealed password, if any: what a start checks its key with.
pub async fn any_sealed_password<C: ConnectionTrait>(db: &C) -> RepoResult<Option<String>> {
    Ok(node_bmc::Entity::find()
        .filter(node_bmc::Column::PasswordSealed.is_not_null())
        .one(db)
        .await?
        .and_then(|row| row.password_sealed))
}

/// The node whose BMC is at `address` (host, with or without port), if
/// exactly one: what a machine reporting its BMC address is matched to.
pub async fn node_at_address<C: ConnectionTrait>(db: &C, host: &str) -> RepoResult<Option<i64>> {
    let rows = node_bmc::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(node_bmc::Column::Address.eq(host))
                .add(node_bmc::Column::Address.starts_with(format!("{host}:"))),
        )
        .all(db)
        .await?;
    Ok(match rows.as_slice() {
        [one] => Some(one.node_id),
        _ => None,
    })
}

/// Records the BMC address a machine read in-band on a node whose BMC has
/// none; true when it was filled.
pub async fn fill_address<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    address: &str,
) -> RepoResult<bool> {
    let result = node_bmc::Entity::update_many()
        .col_expr(node_bmc::Column::Address, address.into())
        .col_expr(node_bmc::Column::UpdatedAt, now().into())
        .filter(node_bmc::Column::NodeId.eq(node_id))
        .filter(node_bmc::Column::Address.eq(""))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// How many BMCs last reported each power state, and how many of them
/// failed their last call: what `/metrics` shows.
pub async fn power_counts<C: ConnectionTrait>(db: &C) -> RepoResult<(Vec<(String, i64)>, i64)> {
    let by_state: Vec<(String, i64)> = node_bmc::Entity::find()
        .select_only()
        .column(node_bmc::Column::PowerState)
        .column_as(node_bmc::Column::NodeId.count(), "n")
        .group_by(node_bmc::Column::PowerState)
        .order_by_asc(node_bmc::Column::PowerState)
        .into_tuple()
        .all(db)
        .await?;
    let failing = node_bmc::Entity::find()
        .filter(node_bmc::Column::PowerError.is_not_null())
        .count(db)
        .await?;
    Ok((by_state, failing as i64))
}
