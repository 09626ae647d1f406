//! Binding a role to a node in a deployment, and everything it requires.

use entity::{deployment, node, noderole, role};
use sea_orm::ConnectionTrait;

use super::{merge_json, DomainError, DomainResult};
use crate::db::{deployments, noderoles, nodes, roles, Key, RepoError};

/// What to bind: a role to a node in a deployment, with optional data
/// merged over the role's defaults.
#[derive(Debug, Clone)]
pub struct BindRequest {
    pub node: Key,
    pub role: Key,
    pub deployment: Key,
    pub data: Option<serde_json::Value>,
}

/// Creates the noderole (proposed) and resolves its requirements, creating
/// the bindings and edges they need. Refuses a duplicate or a cycle.
/// Call inside a transaction: a failure leaves nothing behind.
pub async fn bind<C: ConnectionTrait>(db: &C, req: &BindRequest) -> DomainResult<noderole::Model> {
    let node = nodes::get(db, &req.node).await.map_err(field("node"))?;
    let role = roles::get(db, &req.role).await.map_err(field("role"))?;
    let deployment = deployments::get(db, &req.deployment)
        .await
        .map_err(field("deployment"))?;
    if let Some(data) = &req.data {
        if !data.is_object() {
            return Err(DomainError::invalid("data", "must be a JSON object"));
        }
    }
    if noderoles::find(db, node.id, role.id, deployment.id)
        .await?
        .is_some()
    {
        return Err(RepoError::Duplicate {
            entity: "noderole",
            key: format!("{} on {} in {}", role.name, node.name, deployment.name),
        }
        .into());
    }
    let ancestry = deployments::ancestry(db, deployment.id).await?;
    bind_resolved(db, &node, &role, &ancestry, req.data.as_ref(), 0).await
}

fn field(name: &'static str) -> impl Fn(RepoError) -> DomainError {
    move |err| match err {
        RepoError::NotFound { entity, key } => {
            DomainError::invalid(name, format!("{entity} `{key}` not found"))
        }
        other => other.into(),
    }
}

/// Binds `role` on `node` in `ancestry[0]`; requirements resolved per
/// DESIGN section 1.
async fn bind_resolved<C: ConnectionTrait>(
    db: &C,
    node: &node::Model,
    role: &role::Model,
    ancestry: &[deployment::Model],
    data: Option<&serde_json::Value>,
    depth: usize,
) -> DomainResult<noderole::Model> {
    if depth > 32 {
        return Err(DomainError::Cycle {
            node: node.name.clone(),
            role: role.name.clone(),
        });
    }
    if role.admin_only && !node.admin {
        return Err(DomainError::invalid(
            "node",
            format!("role {} may only be bound to an admin node", role.name),
        ));
    }
    let mut proposed = role.data.clone();
    if !proposed.is_object() {
        proposed = serde_json::json!({});
    }
    if let Some(data) = data {
        merge_json(&mut proposed, data);
    }
    let deployment = &ancestry[0];
    let child = noderoles::insert(db, node.id, role.id, deployment.id, proposed).await?;
    for required_name in roles::requirements(db, role.id).await? {
        let required = roles::get(db, &Key::Name(required_name.clone()))
            .await
            .map_err(|_| {
                DomainError::invalid(
                    "role",
                    format!("role {} requires unknown role {required_name}", role.name),
                )
            })?;
        let parent = Box::pin(resolve(db, node, &required, ancestry, depth)).await?;
        if parent.id == child.id || noderoles::reaches(db, child.id, parent.id).await? {
            return Err(DomainError::Cycle {
                node: node.name.clone(),
                role: role.name.clone(),
            });
        }
        noderoles::add_edge(db, &parent, child.id).await?;
    }
    Ok(child)
}

/// Finds or creates the noderole that satisfies a requirement on `required`.
async fn resolve<C: ConnectionTrait>(
    db: &C,
    node: &node::Model,
    required: &role::Model,
    ancestry: &[deployment::Model],
    depth: usize,
) -> DomainResult<noderole::Model> {
    let chain_ids: Vec<i64> = ancestry.iter().map(|d| d.id).collect();
    if let Some(same_node) = noderoles::on_node(db, required.id, node.id).await? {
        return Ok(same_node);
    }
    if !required.implicit {
        for deployment_id in &chain_ids {
            if let Some(found) = noderoles::find_in(db, required.id, None, &[*deployment_id])
                .await?
                .into_iter()
                .next()
            {
                return Ok(found);
            }
        }
    }
    let target = if required.cluster {
        nodes::first_admin(db)
            .await?
            .unwrap_or_else(|| node.clone())
    } else {
        node.clone()
    };
    if target.id != node.id {
        if let Some(existing) = noderoles::on_node(db, required.id, target.id).await? {
            return Ok(existing);
        }
    }
    Box::pin(bind_resolved(
        db,
        &target,
        required,
        ancestry,
        None,
        depth + 1,
    ))
    .await
}
