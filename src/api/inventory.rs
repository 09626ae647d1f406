//! `PUT /api/v2/nodes/{key}/inventory`: the machine reports what it is,
//! from its discovery image, with its own node token (or the admin does).
//!
//! The body is checked field by field before anything is stored, so a
//! bad report is a 422 naming the field as a path into the document
//! (`disks[1].size_bytes`, `nics[0].mac`) rather than a stored document
//! that templates and filters trip over later. The stored document is the
//! checked one: MACs in lower-case colon form, `bmc`, `lldp` and
//! `speed_mbps` present (null when unknown).

use actix_web::{put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Caller;
use super::body;
use super::ApiError;
use super::AppState;
use crate::db::nodes::{self, normalise_mac};
use crate::db::Key;
use crate::domain::node_token;

/// The most disks or NICs one report may list.
pub const MAX_DEVICES: usize = 256;
/// The longest text field (models, serials, vendors, addresses).
const MAX_TEXT: usize = 256;
/// The longest device name (`vda`, `enp3s0f1`).
const MAX_NAME: usize = 64;

/// What a machine is, as its discovery image reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub cpus: Cpus,
    /// Memory the kernel sees (MemTotal), in MiB.
    pub memory_mib: u64,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub system: System,
    /// The BMC the machine reads in-band (`ipmitool lan print`), if any.
    pub bmc: Option<BmcReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cpus {
    /// Logical processors.
    pub count: u64,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The kernel's name for it (`vda`, `sda`, `nvme0n1`).
    pub name: String,
    pub size_bytes: u64,
    pub model: String,
    pub serial: String,
    pub rotational: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    /// Lower-case, colon separated.
    pub mac: String,
    pub driver: String,
    /// Link speed; null when the link is down or the driver does not say.
    pub speed_mbps: Option<u64>,
    /// What the switch port says over LLDP (`lldpctl`), if anything.
    pub lldp: Option<Lldp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lldp {
    pub chassis: String,
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct System {
    pub vendor: String,
    pub product: String,
    pub serial: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BmcReport {
    pub address: String,
}

/// A stored inventory: the document and when kiln received it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InventoryView {
    #[serde(flatten)]
    pub inventory: Inventory,
    pub received_at: DateTime<Utc>,
}

/// The answer to a report: the stored inventory and the node it is kept
/// on. A machine enrolled into the node defined by its BMC learns its
/// node's name here, for its later calls (its token moved with it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InventoryReceipt {
    pub node: String,
    #[serde(flatten)]
    pub view: InventoryView,
}

impl InventoryView {
    /// The view of a stored row; `None` for a document this kiln cannot
    /// read back (written by a newer kiln), rather than a failed request.
    pub fn from_row(row: entity::node_inventory::Model) -> Option<Self> {
        match serde_json::from_value(row.document) {
            Ok(inventory) => Some(Self {
                inventory,
                received_at: row.received_at,
            }),
            Err(e) => {
                tracing::warn!(node_id = row.node_id, error = %e, "stored inventory unreadable");
                None
            }
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        message: format!("{field}: {}", message.into()),
        field: Some(field.to_string()),
    }
}

/// Reads a JSON object, refusing keys it does not know and missing ones
/// it needs (`optional` ones come back as null).
struct Object<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    fn new(
        path: &str,
        value: &'a Value,
        required: &[&str],
        optional: &[&str],
    ) -> Result<Self, ApiError> {
        let shown = if path.is_empty() { "body" } else { path };
        let map = value
            .as_object()
            .ok_or_else(|| invalid(shown, "must be an object"))?;
        for key in map.keys() {
            if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
                return Err(invalid(&join(path, key), "unknown field"));
            }
        }
        for key in required {
            if !map.contains_key(*key) {
                return Err(invalid(&join(path, key), "missing field"));
            }
        }
        Ok(Self {
            path: path.to_string(),
            map,
        })
    }

    fn field(&self, key: &str) -> (String, &'a Value) {
        (
            join(&self.path, key),
            self.map.get(key).unwrap_or(&Value::Null),
        )
    }

    fn text(&self, key: &str, max: usize, non_empty: bool) -> Result<String, ApiError> {
        let (path, value) = self.field(key);
        let text = value
            .as_str()
            .ok_or_else(|| invalid(&path, "must be a string"))?;
        if text.chars().count() > max {
            return Err(invalid(&path, format!("must be at most {max} characters")));
        }
        if non_empty && text.trim().is_empty() {
            return Err(invalid(&path, "must not be empty"));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid(&path, "must not contain control characters"));
        }
        Ok(text.to_string())
    }

    fn count(&self, key: &str, max: u64) -> Result<u64, ApiError> {
        let (path, value) = self.field(key);
        count(&path, value, max)
    }

    fn optional_count(&self, key: &str, max: u64) -> Result<Option<u64>, ApiError> {
        let (path, value) = self.field(key);
        match value {
            Value::Null => Ok(None),
            v => count(&path, v, max).map(Some),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        let (path, value) = self.field(key);
        value
            .as_bool()
            .ok_or_else(|| invalid(&path, "must be true or false"))
    }

    fn list(&self, key: &str) -> Result<(String, &'a Vec<Value>), ApiError> {
        let (path, value) = self.field(key);
        let list = value
            .as_array()
            .ok_or_else(|| invalid(&path, "must be an array"))?;
        if list.len() > MAX_DEVICES {
            return Err(invalid(
                &path,
                format!("must list at most {MAX_DEVICES} entries"),
            ));
        }
        Ok((path, list))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A whole number from 0 to `max` (JSON has no other way to say so).
fn count(path: &str, value: &Value, max: u64) -> Result<u64, ApiError> {
    match value.as_u64() {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(invalid(path, format!("must be at most {max}"))),
        None if value.as_i64().is_some() || value.as_f64().is_some_and(|f| f < 0.0) => {
            Err(invalid(path, "must not be negative"))
        }
        None => Err(invalid(path, "must be a whole number")),
    }
}

/// Checks a report field by field; the document to store comes back.
pub fn check(value: &Value) -> Result<Inventory, ApiError> {
    let top = Object::new(
        "",
        value,
        &["cpus", "memory_mib", "disks", "nics", "system"],
        &["bmc"],
    )?;
    let (path, cpus) = top.field("cpus");
    let cpus = Object::new(&path, cpus, &["count", "model"], &[])?;
    let cpus = Cpus {
        count: cpus.count("count", 1 << 20)?,
        model: cpus.text("model", MAX_TEXT, false)?,
    };
    // Stored in a signed 64-bit column.
    let memory_mib = top.count("memory_mib", i64::MAX as u64)?;
    let (path, list) = top.list("disks")?;
    let mut disks = Vec::with_capacity(list.len());
    for (i, disk) in list.iter().enumerate() {
        let disk = Object::new(
            &format!("{path}[{i}]"),
            disk,
            &["name", "size_bytes", "model", "serial", "rotational"],
            &[],
        )?;
        disks.push(Disk {
            name: disk.text("name", MAX_NAME, true)?,
            size_bytes: disk.count("size_bytes", i64::MAX as u64)?,
            model: disk.text("model", MAX_TEXT, false)?,
            serial: disk.text("serial", MAX_TEXT, false)?,
            rotational: disk.flag("rotational")?,
        });
    }
    let (path, list) = top.list("nics")?;
    let mut nics = Vec::with_capacity(list.len());
    for (i, nic) in list.iter().enumerate() {
        let nic = Object::new(
            &format!("{path}[{i}]"),
            nic,
            &["name", "mac", "driver"],
            &["speed_mbps", "lldp"],
        )?;
        let raw_mac = nic.text("mac", MAX_NAME, true)?;
        let mac = normalise_mac(&raw_mac).map_err(|reason| invalid(&nic.field("mac").0, reason))?;
        let (lldp_path, lldp) = nic.field("lldp");
        let lldp = match lldp {
            Value::Null => None,
            v => {
                let lldp = Object::new(&lldp_path, v, &["chassis", "port"], &[])?;
                Some(Lldp {
                    chassis: lldp.text("chassis", MAX_TEXT, false)?,
                    port: lldp.text("port", MAX_TEXT, false)?,
                })
            }
        };
        nics.push(Nic {
            name: nic.text("name", MAX_NAME, true)?,
            mac,
            driver: nic.text("driver", MAX_NAME, false)?,
            speed_mbps: nic.optional_count("speed_mbps", 10_000_000)?,
            lldp,
        });
    }
    let (path, system) = top.field("system");
    let system = Object::new(&path, system, &["vendor", "product", "serial"], &[])?;
    let system = System {
        vendor: system.text("vendor", MAX_TEXT, false)?,
        product: system.text("product", MAX_TEXT, false)?,
        serial: system.text("serial", MAX_TEXT, false)?,
    };
    let (path, bmc) = top.field("bmc");
    let bmc = match bmc {
        Value::Null => None,
        v => {
            let bmc = Object::new(&path, v, &["address"], &[])?;
            Some(BmcReport {
                address: bmc.text("address", MAX_TEXT, true)?,
            })
        }
    };
    Ok(Inventory {
        cpus,
        memory_mib,
        disks,
        nics,
        system,
        bmc,
    })
}

/// The machine's report of itself: the node's own token (as its discovery
/// image has it) or the admin token.
#[utoipa::path(
    put,
    path = "/api/v2/nodes/{key}/inventory",
    tag = "nodes",
    params(("key" = String, Path, description = "id or name")),
    request_body = Inventory,
    responses((status = 200, description = "The stored inventory, when it was received, and the node it is kept on (the node defined by the reported BMC, when the machine was enrolled into it)", body = InventoryReceipt), (status = 400, description = "not JSON"), (status = 401, description = "missing or wrong token (another node's token is wrong)"), (status = 403, description = "a node token may not report this, named in error.field"), (status = 404, description = "unknown id or name"), (status = 422, description = "invalid field, named in error.field as a path such as disks[1].size_bytes"), (status = 503, description = "the database does not answer"))
)]
#[put("/nodes/{key}/inventory")]
async fn report(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = Key::parse(&path);
    if let Caller::Token(token) = &caller {
        let node = nodes::get(&state.db, &key)
            .await
            .map_err(|_| ApiError::Unauthorized)?;
        if !nodes::token_matches(&node, token) {
            return Err(ApiError::Unauthorized);
        }
        node_token::check_inventory_report(&node)?;
    }
    let value: Value = body::parse(&raw)?;
    let inventory = check(&value)?;
    let memory_mib = i64::try_from(inventory.memory_mib).unwrap_or(i64::MAX);
    let disk_count = i32::try_from(inventory.disks.len()).unwrap_or(i32::MAX);
    let document = serde_json::to_value(&inventory)
        .map_err(|e| ApiError::Internal(format!("inventory document: {e}")))?;
    let reported = state
        .orchestrator
        .record_inventory(&key, document, memory_mib, disk_count)
        .await?;
    Ok(HttpResponse::Ok().json(InventoryReceipt {
        node: reported.node,
        view: InventoryView {
            inventory,
            received_at: reported.stored.received_at,
        },
    }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(report);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn example() -> Value {
        json!({
            "cpus": {"count": 4, "model": "QEMU Virtual CPU"},
            "memory_mib": 1024,
            "disks": [{"name": "vda", "size_bytes": 1073741824, "model": "", "serial": "d1", "rotational": true}],
            "nics": [{"name": "eth0", "mac": "52-54-00-AA-BB-CC", "driver": "e1000", "speed_mbps": 1000, "lldp": null}],
            "system": {"vendor": "QEMU", "product": "Standard PC", "serial": ""},
            "bmc": null
        })
    }

    fn field_of(value: Value) -> String {
        match check(&value) {
            Err(ApiError::Unprocessable { field, .. }) => field.unwrap_or_default(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_good_report_is_normalised() {
        let checked = check(&example()).unwrap();
        assert_eq!(checked.nics[0].mac, "52:54:00:aa:bb:cc");
        assert_eq!(checked.disks[0].name, "vda");
        let mut no_optional = example();
        no_optional.as_object_mut().unwrap().remove("bmc");
        no_optional["nics"][0]
            .as_object_mut()
            .unwrap()
            .remove("lldp");
        assert_eq!(check(&no_optional).unwrap().bmc, None);
    }

    #[test]
    fn bad_fields_are_named_by_path() {
        let mut v = example();
        v["disks"][0]["size_bytes"] = json!(-1);
        assert_eq!(field_of(v), "disks[0].size_bytes");
        let mut v = example();
        v["nics"][0]["mac"] = json!("not-a-mac");
        assert_eq!(field_of(v), "nics[0].mac");
        let mut v = example();
        v["system"]["colour"] = json!("red");
        assert_eq!(field_of(v), "system.colour");
        let mut v = example();
        v["cpus"]["count"] = json!(1.5);
        assert_eq!(field_of(v), "cpus.count");
        let mut v = example();
        v["disks"][0]["model"] = json!("x".repeat(300));
        assert_eq!(field_of(v), "disks[0].model");
        let mut v = example();
        v["disks"] = json!(vec![v["disks"][0].clone(); MAX_DEVICES + 1]);
        assert_eq!(field_of(v), "disks");
        let mut v = example();
        v.as_object_mut().unwrap().remove("memory_mib");
        assert_eq!(field_of(v), "memory_mib");
    }
}
