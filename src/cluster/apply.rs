//! Making the database match a cluster file, in one transaction.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use sea_orm::{DatabaseConnection, TransactionTrait};

use entity::node_bmc;

use super::file::{to_json, BmcDef, ClusterFile, DeploymentDef, RoleDef};
use super::validate::{self, Known, KnownInterface};
use super::ClusterError;
use crate::bmc::{Secret, SecretKey};
use crate::db::bmcs::{self, BmcWrite, PasswordWrite};
use crate::db::bootenvs::{self, BootenvSpec};
use crate::db::networks::{self, NetworkSpec};
use crate::db::nodes::{self, NewInterface, NewNode, NodeChange};
use crate::db::roles::{self, JigKind, RoleSpec};
use crate::db::{deployments, noderoles, Key, RepoError};
use crate::domain::binding::{bind, BindRequest};
use crate::domain::bmc::{prepare, BmcSpec};
use crate::domain::{lifecycle, BootenvKind, DeploymentState, DomainError, Effects, NoderoleState};

/// What applying did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// What was applied but deserves a look, each naming file and line.
    pub warnings: Vec<String>,
    pub dry_run: bool,
}

impl ApplyReport {
    fn record(&mut self, what: String, created: bool, changed: bool) {
        if created {
            self.created.push(what);
        } else if changed {
            self.changed.push(what);
        } else {
            self.unchanged.push(what);
        }
    }

    /// One line per object, then totals.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.created {
            out.push_str(&format!("created   {c}\n"));
        }
        for c in &self.changed {
            out.push_str(&format!("changed   {c}\n"));
        }
        for c in &self.unchanged {
            out.push_str(&format!("unchanged {c}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning   {w}\n"));
        }
        out.push_str(&format!(
            "{}{} created, {} changed, {} unchanged\n",
            if self.dry_run { "dry run: " } else { "" },
            self.created.len(),
            self.changed.len(),
            self.unchanged.len()
        ));
        out
    }
}

fn bmc_spec(def: &BmcDef) -> BmcSpec {
    BmcSpec {
        driver: def.driver,
        address: def.address.clone(),
        username: def.username.clone(),
        password: def.password.clone().map(Secret::new),
        system: def.system.clone(),
        verify_tls: def.verify_tls,
    }
}

/// The BMC write that brings `stored` to what the file says, if they
/// differ. A file without `bmc` leaves the node's alone; a password is
/// compared with the stored one opened, so applying a file twice writes
/// nothing the second time.
fn bmc_change(
    stored: Option<&node_bmc::Model>,
    def: Option<&BmcDef>,
    key: Option<&SecretKey>,
) -> Result<Option<Option<BmcWrite>>, DomainError> {
    let Some(def) = def else { return Ok(None) };
    let mut write = prepare(&bmc_spec(def), key, "bmc")?;
    let Some(row) = stored else {
        return Ok(Some(Some(write)));
    };
    let same_password = match (&def.password, &row.password_sealed, key) {
        (None, _, _) => true,
        (Some(p), None, _) => p.is_empty(),
        (Some(p), Some(sealed), Some(key)) => key.open(sealed).is_ok_and(|open| open.expose() == p),
        (Some(_), Some(_), None) => false,
    };
    if same_password {
        write.password = PasswordWrite::Keep;
    }
    let same = row.driver == write.driver
        && row.address == write.address
        && row.username == write.username
        && row.system == write.system
        && row.verify_tls == write.verify_tls
        && same_password;
    Ok((!same).then_some(Some(write)))
}

struct Ctx<'a> {
    file: String,
    dir: &'a Path,
}

impl Ctx<'_> {
    fn invalid(&self, field: impl Into<String>, reason: impl Into<String>) -> ClusterError {
        ClusterError::Invalid {
            file: self.file.clone(),
            line: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn domain(&self, field: impl Into<String>, err: DomainError) -> ClusterError {
        match err {
            DomainError::Repo(RepoError::Database(e)) => ClusterError::Database {
                file: self.file.clone(),
                reason: e.to_string(),
            },
            other => self.invalid(field, other.to_string()),
        }
    }

    fn repo(&self, field: impl Into<String>, err: RepoError) -> ClusterError {
        self.domain(field, DomainError::Repo(err))
    }
}

/// Applies `file`; with `dry_run` everything is rolled back. Returns the
/// report and the effects to hand to running actors (none in a dry run).
/// A file with BMC passwords needs [`apply_sealing`].
pub async fn apply(
    db: &DatabaseConnection,
    file: &ClusterFile,
    dry_run: bool,
) -> Result<(ApplyReport, Effects), ClusterError> {
    apply_sealing(db, file, dry_run, None).await
}

/// [`apply`], sealing BMC passwords with `key`.
pub async fn apply_sealing(
    db: &DatabaseConnection,
    file: &ClusterFile,
    dry_run: bool,
    key: Option<&SecretKey>,
) -> Result<(ApplyReport, Effects), ClusterError> {
    let ctx = Ctx {
        file: file.path.display().to_string(),
        dir: file.path.parent().unwrap_or(Path::new(".")),
    };
    let role_specs = file
        .roles
        .iter()
        .map(|r| role_spec(&ctx, r))
        .collect::<Result<Vec<_>, _>>()?;
    check_role_cycles(&ctx, &role_specs)?;
    let txn = db
        .begin()
        .await
        .map_err(|e| ctx.repo("database", e.into()))?;
    let known = known(&txn).await.map_err(|e| ctx.repo("database", e))?;
    let mut report = ApplyReport {
        warnings: validate::check(file, &known)?,
        dry_run,
        ..Default::default()
    };
    let mut effects = Effects::default();
    for n in &file.networks {
        let spec = NetworkSpec {
            name: n.name.clone(),
            subnet: n.subnet.clone(),
            router: n.router.clone(),
            dns: n.dns.clone(),
            domain: n.domain.clone(),
            pool: n.pool.clone().map(|[a, b]| (a, b)),
            lease_secs: n.lease_secs,
        };
        let existed = networks::list(&txn)
            .await
            .map_err(|e| ctx.repo("network", e))?;
        let created = !existed.iter().any(|x| x.name == n.name);
        let changed = networks::upsert(&txn, &spec)
            .await
            .map_err(|e| ctx.repo(format!("network {}", n.name), e))?;
        report.record(format!("network {}", n.name), created, changed);
    }
    for spec in &role_specs {
        let created = roles::get(&txn, &Key::Name(spec.name.clone()))
            .await
            .is_err();
        let (_, changed) = roles::upsert(&txn, spec)
            .await
            .map_err(|e| ctx.repo(format!("role {}", spec.name), e))?;
        report.record(format!("role {}", spec.name), created, changed);
    }
    for b in &file.bootenvs {
        let created = bootenvs::get(&txn, &b.name).await.is_err();
        let kind = BootenvKind::parse(&b.kind).ok_or_else(|| {
            ctx.invalid(
                format!("bootenv {}", b.name),
                format!("invalid kind: `{}` is not `ipxe` or `local`", b.kind),
            )
        })?;
        let spec = BootenvSpec {
            name: b.name.clone(),
            kind,
            kernel: b.kernel.clone(),
            initrd: b.initrd.clone(),
            append: b.append.clone(),
            template: b.template.clone(),
            description: b.description.clone(),
        };
        let (_, changed) = bootenvs::upsert(&txn, &spec)
            .await
            .map_err(|e| ctx.repo(format!("bootenv {}", b.name), e))?;
        report.record(format!("bootenv {}", b.name), created, changed);
    }
    for n in &file.nodes {
        let field = format!("node {}", n.name);
        match nodes::get(&txn, &Key::Name(n.name.clone())).await {
            Ok(existing) => {
                // `alive` and `bootenv` are the node's runtime state once it
                // exists: the file sets them again only when it says `force`.
                let runtime = |set: bool| set && n.force;
                let change = NodeChange {
                    alive: n.alive.filter(|a| runtime(*a != existing.alive)),
                    available: n.available.filter(|a| *a != existing.available),
                    bootenv: n
                        .bootenv
                        .clone()
                        .filter(|b| runtime(*b != existing.bootenv)),
                    target_os: n
                        .target_os
                        .clone()
                        .filter(|t| Some(t) != existing.target_os.as_ref())
                        .map(Some),
                    bmc: None,
                    keeps_alive_since: false,
                };
                let stored_bmc = bmcs::get(&txn, existing.id)
                    .await
                    .map_err(|e| ctx.repo(&field, e))?;
                let change = NodeChange {
                    bmc: bmc_change(stored_bmc.as_ref(), n.bmc.as_ref(), key)
                        .map_err(|e| ctx.domain(format!("{field} bmc"), e))?,
                    ..change
                };
                let changed = change.alive.is_some()
                    || change.available.is_some()
                    || change.bootenv.is_some()
                    || change.target_os.is_some()
                    || change.bmc.is_some();
                if changed {
                    let (_, e) =
                        crate::domain::nodes::update_node(&txn, &Key::Id(existing.id), &change)
                            .await
                            .map_err(|e| ctx.domain(&field, e))?;
                    effects.merge(e);
                }
                report.record(field, false, changed);
            }
            Err(RepoError::NotFound { .. }) => {
                let new = NewNode {
                    name: n.name.clone(),
                    admin: n.admin,
                    alive: n.alive.unwrap_or(false),
                    available: n.available.unwrap_or(true),
                    bootenv: n.bootenv.clone().unwrap_or_else(|| "sledgehammer".into()),
                    target_os: n.target_os.clone(),
                    deployment: None,
                    description: n.description.clone(),
                    interfaces: n
                        .interfaces
                        .iter()
                        .map(|i| NewInterface {
                            mac: i.mac.clone(),
                            ip: i.ip.clone(),
                            hostname: i.hostname.clone(),
                        })
                        .collect(),
                    bmc: n
                        .bmc
                        .as_ref()
                        .map(|b| prepare(&bmc_spec(b), key, "bmc"))
                        .transpose()
                        .map_err(|e| ctx.domain(format!("{field} bmc"), e))?,
                };
                let (_, _, e) = crate::domain::nodes::create_node(&txn, new)
                    .await
                    .map_err(|e| ctx.domain(&field, e))?;
                effects.merge(e);
                report.record(field, true, false);
            }
            Err(e) => return Err(ctx.repo(field, e)),
        }
    }
    for d in &file.deployments {
        let field = format!("deployment {}", d.name);
        let created = match deployments::get(&txn, &Key::Name(d.name.clone())).await {
            Ok(_) => false,
            Err(RepoError::NotFound { .. }) => {
                deployments::create(&txn, &d.name, d.parent.as_deref(), &d.description)
                    .await
                    .map_err(|e| ctx.repo(&field, e))?;
                true
            }
            Err(e) => return Err(ctx.repo(&field, e)),
        };
        let deployment = deployments::get(&txn, &Key::Name(d.name.clone()))
            .await
            .map_err(|e| ctx.repo(&field, e))?;
        let mut changed = false;
        for (i, b) in d.bindings.iter().enumerate() {
            let mut not_alive = Vec::new();
            let role = roles::get(&txn, &Key::Name(b.role.clone()))
                .await
                .map_err(|_| {
                    ctx.invalid(
                        format!("{field} binding role"),
                        format!("role `{}` not found", b.role),
                    )
                })?;
            for node_name in &b.nodes {
                let node = nodes::get(&txn, &Key::Name(node_name.clone()))
                    .await
                    .map_err(|_| {
                        ctx.invalid(
                            format!("{field} binding {} nodes", b.role),
                            format!("node `{node_name}` not found"),
                        )
                    })?;
                if !node.alive {
                    not_alive.push(node_name.as_str());
                }
                if noderoles::find(&txn, node.id, role.id, deployment.id)
                    .await
                    .map_err(|e| ctx.repo(&field, e))?
                    .is_some()
                {
                    continue;
                }
                let data = b.data.as_ref().map(|_| to_json(&b.data));
                bind(
                    &txn,
                    &BindRequest {
                        node: Key::Id(node.id),
                        role: Key::Id(role.id),
                        deployment: Key::Id(deployment.id),
                        data,
                    },
                )
                .await
                .map_err(|e| ctx.domain(format!("{field} binding {} on {node_name}", b.role), e))?;
                changed = true;
            }
            if !not_alive.is_empty() {
                report.warnings.push(not_alive_warning(d, i, &not_alive));
            }
        }
        if d.commit {
            let proposed =
                noderoles::of_deployment_in(&txn, deployment.id, &[NoderoleState::Proposed])
                    .await
                    .map_err(|e| ctx.repo(&field, e))?;
            if !proposed.is_empty() || deployment.state == DeploymentState::Proposed {
                let e = lifecycle::commit_deployment(&txn, &Key::Id(deployment.id))
                    .await
                    .map_err(|e| ctx.domain(&field, e))?;
                effects.merge(e);
                changed = true;
            }
        }
        report.record(field, created, changed && !created);
    }
    if dry_run {
        txn.rollback()
            .await
            .map_err(|e| ctx.repo("database", e.into()))?;
        return Ok((report, Effects::default()));
    }
    txn.commit()
        .await
        .map_err(|e| ctx.repo("database", e.into()))?;
    Ok((report, effects))
}

/// Bound noderoles of nodes that are not alive wait (the annealer starts
/// nothing on them): a file's nodes start so unless they say `alive = true`.
fn not_alive_warning(d: &DeploymentDef, binding: usize, nodes: &[&str]) -> String {
    let index = binding.to_string();
    let line =
        d.at.line(&["bindings", &index, "nodes"])
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
    format!(
        "{}: {line}deployment {} bindings[{binding}]: role {} is bound to {} not alive ({}): its noderoles wait until the node is alive",
        d.at.file,
        d.name,
        d.bindings[binding].role,
        if nodes.len() == 1 { "a node" } else { "nodes" },
        nodes.join(", ")
    )
}

/// What the file is checked against, read in the applying transaction.
async fn known<C: sea_orm::ConnectionTrait>(txn: &C) -> Result<Known, RepoError> {
    Ok(Known {
        networks: networks::list(txn)
            .await?
            .into_iter()
            .map(|n| (n.name, n.subnet))
            .collect(),
        interfaces: nodes::all_interfaces(txn)
            .await?
            .into_iter()
            .map(|(node, mac, ip)| KnownInterface { node, mac, ip })
            .collect(),
        roles: roles::list(txn)
            .await?
            .into_iter()
            .map(|r| (r.role.name, r.role.jig))
            .collect(),
        bootenvs: bootenvs::list(txn)
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect(),
        nodes: nodes::all_names(txn)
            .await?
            .into_iter()
            .map(|(_, name)| name)
            .collect(),
        deployments: deployments::list(txn)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect(),
    })
}

fn role_spec(ctx: &Ctx<'_>, r: &RoleDef) -> Result<RoleSpec, ClusterError> {
    let field = format!("role {}", r.name);
    let jig = JigKind::parse(&r.jig).ok_or_else(|| {
        ctx.invalid(
            format!("{field} jig"),
            format!("`{}` is not noop, test, script or builtin", r.jig),
        )
    })?;
    let known = [
        "discovery",
        "implicit",
        "destructive",
        "cluster",
        "admin_only",
        "priority",
    ];
    if let Some(bad) = r.flags.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(ctx.invalid(
            format!("{field} flags"),
            format!("unknown flag `{bad}` (known: {})", known.join(", ")),
        ));
    }
    let flag = |name: &str| r.flags.iter().any(|f| f == name);
    let scripts = r
        .scripts
        .iter()
        .map(|s| {
            let p = Path::new(s);
            if p.is_absolute() {
                s.clone()
            } else {
                ctx.dir.join(p).display().to_string()
            }
        })
        .collect();
    Ok(RoleSpec {
        name: r.name.clone(),
        jig,
        requires: r.requires.clone(),
        discovery: flag("discovery"),
        implicit: flag("implicit"),
        destructive: flag("destructive"),
        cluster: flag("cluster"),
        admin_only: flag("admin_only"),
        priority: flag("priority"),
        data: to_json(&r.data),
        scripts,
        description: r.description.clone(),
    })
}

/// Role requirements must not form a cycle (within the file).
fn check_role_cycles(ctx: &Ctx<'_>, specs: &[RoleSpec]) -> Result<(), ClusterError> {
    let graph: HashMap<&str, &Vec<String>> = specs
        .iter()
        .map(|s| (s.name.as_str(), &s.requires))
        .collect();
    fn visit<'a>(
        name: &'a str,
        graph: &HashMap<&'a str, &'a Vec<String>>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|p| *p == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name);
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        path.push(name);
        for next in graph.get(name).map(|v| v.iter()).into_iter().flatten() {
            if let Some(cycle) = visit(next.as_str(), graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name);
        None
    }
    let mut done = HashSet::new();
    for spec in specs {
        if let Some(cycle) = visit(&spec.name, &graph, &mut Vec::new(), &mut done) {
            return Err(ctx.invalid(
                format!("role {} requires", spec.name),
                format!("requirements form a cycle: {}", cycle.join(" -> ")),
            ));
        }
    }
    Ok(())
}
