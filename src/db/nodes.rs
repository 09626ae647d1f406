//! Nodes and their interfaces.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use entity::{interface, node, node_bmc, node_inventory};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionSession, TransactionTrait,
};
use sha2::{Digest, Sha256};

use super::bmcs::{self, BmcWrite};
use super::{deployments, inventory, now, Key, RepoError, RepoResult};

/// A node to create, with the interfaces DHCP and DNS will hand out.
#[derive(Debug, Clone, Default)]
pub struct NewNode {
    pub name: String,
    pub admin: bool,
    pub alive: bool,
    pub available: bool,
    pub bootenv: String,
    pub target_os: Option<String>,
    /// Deployment name; `system` when absent.
    pub deployment: Option<String>,
    pub description: String,
    pub interfaces: Vec<NewInterface>,
    /// Its BMC, when kiln is to power it.
    pub bmc: Option<BmcWrite>,
}

#[derive(Debug, Clone, Default)]
pub struct NewInterface {
    pub mac: String,
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

/// A node with its interfaces and the inventory it last reported (the API
/// shows it as `api::views::NodeView`).
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: node::Model,
    pub interfaces: Vec<interface::Model>,
    pub bmc: Option<node_bmc::Model>,
    pub inventory: Option<node_inventory::Model>,
}

/// Filters and paging for [`list`].
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub alive: Option<bool>,
    pub available: Option<bool>,
    pub bootenv: Option<String>,
    pub deployment_id: Option<i64>,
    /// Substring of the name.
    pub name_contains: Option<String>,
    /// Nodes whose inventory reports at least this much memory.
    pub min_memory_mib: Option<i64>,
    /// Nodes whose inventory reports at least this many disks.
    pub min_disks: Option<i32>,
    pub limit: u64,
    pub offset: u64,
}

/// Normalises a MAC to lower-case colon form, or says what is wrong with it.
pub fn normalise_mac(raw: &str) -> Result<String, String> {
    let hex: String = raw
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{raw}` is not a MAC address (six hex octets)"));
    }
    let lower = hex.to_ascii_lowercase();
    Ok(lower
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).expect("ascii"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// A fresh random node token; only its hash is stored.
pub fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a node token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn validate(new: &NewNode) -> RepoResult<Vec<NewInterface>> {
    if new.name.trim().is_empty() {
        return Err(RepoError::Invalid {
            field: "name".into(),
            reason: "must not be empty".into(),
        });
    }
    if new.name.parse::<i64>().is_ok() {
        return Err(RepoError::Invalid {
            field: "name".into(),
            reason: "must not be all digits (ids are)".into(),
        });
    }
    new.interfaces
        .iter()
        .enumerate()
        .map(|(i, iface)| {
            let mac = normalise_mac(&iface.mac).map_err(|reason| RepoError::Invalid {
                field: format!("interfaces[{i}].mac"),
                reason,
            })?;
            if let Some(ip) = &iface.ip {
                ip.parse::<Ipv4Addr>().map_err(|_| RepoError::Invalid {
                    field: format!("interfaces[{i}].ip"),
                    reason: format!("`{ip}` is not an IPv4 address"),
                })?;
            }
            Ok(NewInterface {
                mac,
                ip: iface.ip.clone(),
                hostname: iface.hostname.clone(),
            })
        })
        .collect()
}

/// A taken address is named as one (the unique index alone cannot say
/// whether the MAC or the address collided).
async fn address_free<C: ConnectionTrait>(db: &C, ip: Option<&str>) -> RepoResult<()> {
    let Some(ip) = ip else { return Ok(()) };
    let taken = interface::Entity::find()
        .filter(interface::Column::Ip.eq(ip))
        .one(db)
        .await?;
    match taken {
        Some(_) => Err(RepoError::Duplicate {
            entity: "interface address",
            key: ip.to_string(),
        }),
        None => Ok(()),
    }
}

/// Creates a node and its interfaces in one transaction; returns the node
/// and its token, which is shown this once and stored only as a hash.
pub async fn create<C: TransactionTrait>(db: &C, new: NewNode) -> RepoResult<(NodeView, String)> {
    let interfaces = validate(&new)?;
    let txn = db.begin().await?;
    let deployment_name = new.deployment.clone().unwrap_or_else(|| "system".into());
    let deployment = deployments::get(&txn, &Key::Name(deployment_name)).await?;
    let token = new_token();
    let stamp = now();
    let node = node::ActiveModel {
        name: Set(new.name.clone()),
        admin: Set(new.admin),
        alive: Set(new.alive),
        available: Set(new.available),
        bootenv: Set(new.bootenv.clone()),
        target_os: Set(new.target_os.clone()),
        deployment_id: Set(deployment.id),
        token_hash: Set(Some(hash_token(&token))),
        description: Set(new.description.clone()),
        created_at: Set(stamp),
        updated_at: Set(stamp),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(
        |e| match RepoError::from_write(e, "node", new.name.clone()) {
            RepoError::ForeignKey { .. } => RepoError::not_found("bootenv", &new.bootenv),
            other => other,
        },
    )?;
    let mut saved = Vec::with_capacity(interfaces.len());
    for iface in interfaces {
        address_free(&txn, iface.ip.as_deref()).await?;
        let mac = iface.mac.clone();
        let row = interface::ActiveModel {
            node_id: Set(node.id),
            mac: Set(iface.mac),
            ip: Set(iface.ip),
            hostname: Set(iface.hostname),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| RepoError::from_write(e, "interface", mac))?;
        saved.push(row);
    }
    if let Some(bmc) = &new.bmc {
        bmcs::put(&txn, node.id, bmc).await?;
    }
    let bmc = bmcs::get(&txn, node.id).await?;
    txn.commit().await?;
    Ok((
        NodeView {
            node,
            interfaces: saved,
            bmc,
            inventory: None,
        },
        token,
    ))
}

/// One node by id or name.
pub async fn get<C: ConnectionTrait>(db: &C, key: &Key) -> RepoResult<node::Model> {
    let query = match key {
        Key::Id(id) => node::Entity::find_by_id(*id),
        Key::Name(name) => node::Entity::find().filter(node::Column::Name.eq(name.as_str())),
    };
    query
        .one(db)
        .await?
        .ok_or_else(|| RepoError::not_found("node", key))
}

/// One node with its interfaces and inventory.
pub async fn get_view<C: ConnectionTrait>(db: &C, key: &Key) -> RepoResult<NodeView> {
    let node = get(db, key).await?;
    let interfaces = interface::Entity::find()
        .filter(interface::Column::NodeId.eq(node.id))
        .order_by_asc(interface::Column::Id)
        .all(db)
        .await?;
    let bmc = bmcs::get(db, node.id).await?;
    let inventory = inventory::of_node(db, node.id).await?;
    Ok(NodeView {
        node,
        interfaces,
        bmc,
        inventory,
    })
}

/// The node owning a MAC, if any.
pub async fn find_by_mac<C: ConnectionTrait>(db: &C, mac: &str) -> RepoResult<Option<node::Model>> {
    let mac = normalise_mac(mac).map_err(|reason| RepoError::Invalid {
        field: "mac".into(),
        reason,
    })?;
    let Some(iface) = interface::Entity::find()
        .filter(interface::Column::Mac.eq(mac))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(node::Entity::find_by_id(iface.node_id).one(db).await?)
}

/// A page of nodes with their interfaces and inventories: three queries
/// whatever the page size.
pub async fn list<C: ConnectionTrait>(db: &C, filter: &NodeFilter) -> RepoResult<Vec<NodeView>> {
    let mut query = node::Entity::find().order_by_asc(node::Column::Id);
    if let Some(alive) = filter.alive {
        query = query.filter(node::Column::Alive.eq(alive));
    }
    if let Some(available) = filter.available {
        query = query.filter(node::Column::Available.eq(available));
    }
    if let Some(bootenv) = &filter.bootenv {
        query = query.filter(node::Column::Bootenv.eq(bootenv.as_str()));
    }
    if let Some(deployment_id) = filter.deployment_id {
        query = query.filter(node::Column::DeploymentId.eq(deployment_id));
    }
    if let Some(part) = &filter.name_contains {
        query = query.filter(node::Column::Name.contains(part.as_str()));
    }
    if filter.min_memory_mib.is_some() || filter.min_disks.is_some() {
        query = query.filter(inventory::hardware_condition(
            filter.min_memory_mib,
            filter.min_disks,
        ));
    }
    let nodes = query
        .limit(filter.limit)
        .offset(filter.offset)
        .all(db)
        .await?;
    let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
    let mut bmc_of: HashMap<i64, node_bmc::Model> = bmcs::of_nodes(db, &ids)
        .await?
        .into_iter()
        .map(|b| (b.node_id, b))
        .collect();
    let mut by_node: HashMap<i64, Vec<interface::Model>> = HashMap::new();
    if !ids.is_empty() {
        for iface in interface::Entity::find()
            .filter(interface::Column::NodeId.is_in(ids.iter().copied()))
            .order_by_asc(interface::Column::Id)
            .all(db)
            .await?
        {
            by_node.entry(iface.node_id).or_default().push(iface);
        }
    }
    let mut inventories = inventory::of_nodes(db, &ids).await?;
    Ok(nodes
        .into_iter()
        .map(|node| NodeView {
            interfaces: by_node.remove(&node.id).unwrap_or_default(),
            bmc: bmc_of.remove(&node.id),
            inventory: inventories.remove(&node.id),
            node,
        })
        .collect())
}

/// The first admin node (lowest id), if any: where cluster roles go.
pub async fn first_admin<C: ConnectionTrait>(db: &C) -> RepoResult<Option<node::Model>> {
    Ok(node::Entity::find()
        .filter(node::Column::Admin.eq(true))
        .order_by_asc(node::Column::Id)
        .one(db)
        .await?)
}

/// How many nodes exist.
pub async fn count<C: ConnectionTrait>(db: &C) -> RepoResult<u64> {
    Ok(node::Entity::find().count(db).await?)
}

/// Whether `token` is the node's own token.
pub fn token_matches(node: &node::Model, token: &str) -> bool {
    node.token_hash.as_deref() == Some(hash_token(token).as_str())
}

/// Fields of a node that change after creation; `None` leaves one alone.
#[derive(Debug, Clone, Default)]
pub struct NodeChange {
    pub alive: Option<bool>,
    pub available: Option<bool>,
    pub bootenv: Option<String>,
    pub target_os: Option<Option<String>>,
    /// `Some(None)` removes the BMC.
    pub bmc: Option<Option<BmcWrite>>,
    /// An `alive: true` that is kiln's own bookkeeping (a retried install
    /// marks its node alive so the annealer works on it), not the machine
    /// coming back: `alive_since` stays, so the inventory it reported
    /// before still counts.
    pub keeps_alive_since: bool,
}

/// Applies a change and returns the node before and after, so callers can
/// publish the facts (`BootenvChanged`, `NodeAliveChanged`) that follow.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    key: &Key,
    change: &NodeChange,
) -> RepoResult<(node::Model, node::Model)> {
    let before = get(db, key).await?;
    let mut active: node::ActiveModel = before.clone().into();
    if let Some(alive) = change.alive {
        active.alive = Set(alive);
        if alive && !before.alive && !change.keeps_alive_since {
            // What the inventory role measures a report's freshness by.
            active.alive_since = Set(Some(now()));
        }
    }
    if let Some(available) = change.available {
        active.available = Set(available);
    }
    if let Some(bootenv) = &change.bootenv {
        active.bootenv = Set(bootenv.clone());
    }
    if let Some(target_os) = &change.target_os {
        active.target_os = Set(target_os.clone());
    }
    match &change.bmc {
        Some(Some(bmc)) => bmcs::put(db, before.id, bmc).await?,
        Some(None) => bmcs::remove(db, before.id).await?,
        None => {}
    }
    active.updated_at = Set(now());
    let after = active.update(db).await.map_err(|e| {
        match RepoError::from_write(e, "node", before.name.clone()) {
            RepoError::ForeignKey { .. } => {
                RepoError::not_found("bootenv", change.bootenv.clone().unwrap_or_default())
            }
            other => other,
        }
    })?;
    Ok((before, after))
}

/// Deletes a node; its interfaces, noderoles and runs go with it.
pub async fn delete<C: ConnectionTrait>(db: &C, key: &Key) -> RepoResult<node::Model> {
    let node = get(db, key).await?;
    node::Entity::delete_by_id(node.id).exec(db).await?;
    Ok(node)
}

/// Makes `into` the node of the machine `from` was registered as: `from`'s
/// interfaces, boot token and liveness move to `into`, and `from` is
/// deleted (its noderoles, runs and inventory with it). Returns `into` as
/// it is now. The caller runs it in the transaction that decided it.
pub async fn absorb<C: ConnectionTrait>(
    db: &C,
    into: &node::Model,
    from: &node::Model,
) -> RepoResult<node::Model> {
    interface::Entity::update_many()
        .col_expr(interface::Column::NodeId, into.id.into())
        .filter(interface::Column::NodeId.eq(from.id))
        .exec(db)
        .await?;
    node::Entity::delete_by_id(from.id).exec(db).await?;
    let mut active: node::ActiveModel = into.clone().into();
    active.alive = Set(from.alive);
    active.alive_since = Set(from.alive_since);
    active.token_hash = Set(from.token_hash.clone());
    active.token_due = Set(from.token_due);
    active.updated_at = Set(now());
    Ok(active.update(db).await?)
}

/// Gives `macs` to a node that has no interfaces yet (what its BMC lists),
/// in one transaction, skipping a MAC another node already has; returns
/// how many were added (none when the node has interfaces by then).
pub async fn add_macs<C: TransactionTrait>(
    db: &C,
    node_id: i64,
    macs: &[String],
) -> RepoResult<usize> {
    let txn = db.begin().await?;
    if interface_count(&txn, node_id).await? > 0 {
        return Ok(0);
    }
    let mut added = 0;
    for raw in macs {
        let Ok(mac) = normalise_mac(raw) else {
            continue;
        };
        if find_by_mac(&txn, &mac).await?.is_some() {
            continue;
        }
        interface::ActiveModel {
            node_id: Set(node_id),
            mac: Set(mac.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| RepoError::from_write(e, "interface", mac))?;
        added += 1;
    }
    txn.commit().await?;
    Ok(added)
}

/// Gives the interface with `mac` the address DHCP leased it, when it has
/// none yet (a MAC learnt from a BMC); true when it was set.
pub async fn fill_leased_address<C: ConnectionTrait>(
    db: &C,
    mac: &str,
    ip: &str,
) -> RepoResult<bool> {
    let mac = normalise_mac(mac).map_err(|reason| RepoError::Invalid {
        field: "mac".into(),
        reason,
    })?;
    let result = interface::Entity::update_many()
        .col_expr(interface::Column::Ip, Some(ip.to_string()).into())
        .filter(interface::Column::Mac.eq(mac))
        .filter(interface::Column::Ip.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// How many interfaces the node has.
pub async fn interface_count<C: ConnectionTrait>(db: &C, node_id: i64) -> RepoResult<u64> {
    Ok(interface::Entity::find()
        .filter(interface::Column::NodeId.eq(node_id))
        .count(db)
        .await?)
}

/// Every node's id and name (for starting node actors), one query.
pub async fn all_names<C: ConnectionTrait>(db: &C) -> RepoResult<Vec<(i64, String)>> {
    Ok(node::Entity::find()
        .select_only()
        .column(node::Column::Id)
        .column(node::Column::Name)
        .order_by_asc(node::Column::Id)
        .into_tuple::<(i64, String)>()
        .all(db)
        .await?)
}

/// Every interface as (node name, MAC, address), in interface order, in
/// two queries: what a cluster file's new interfaces must not collide with.
pub async fn all_interfaces<C: ConnectionTrait>(
    db: &C,
) -> RepoResult<Vec<(String, String, Option<String>)>> {
    let names: HashMap<i64, String> = all_names(db).await?.into_iter().collect();
    Ok(interface::Entity::find()
        .order_by_asc(interface::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|i| {
            let node = names.get(&i.node_id).cloned().unwrap_or_default();
            (node, i.mac, i.ip)
        })
        .collect())
}

/// Stores the hash of the token a boot route issued the node: it replaces
/// the previous one, and the node owes no token until its next boot.
pub async fn store_boot_token<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    token: &str,
) -> RepoResult<()> {
    node::Entity::update_many()
        .col_expr(node::Column::TokenHash, Some(hash_token(token)).into())
        .col_expr(node::Column::TokenDue, false.into())
        .filter(node::Column::Id.eq(node_id))
        .exec(db)
        .await?;
    Ok(())
}
