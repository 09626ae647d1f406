//! Made-up machines for benchmarks: many nodes, each with one interface,
//! registered through the domain as the API would (discovery roles and all).

use sea_orm::ConnectionTrait;

use super::BenchError;
use crate::db::nodes::{NewInterface, NewNode};
use crate::db::Key;
use crate::domain::binding::{bind, BindRequest};

/// The name of benchmark node `n`.
pub fn node_name(n: usize) -> String {
    format!("b{n}.bench.example")
}

/// A MAC no two benchmark nodes share (up to 16 million of them).
pub fn node_mac(n: usize) -> String {
    format!(
        "52:54:{:02x}:{:02x}:{:02x}:01",
        n >> 16 & 255,
        n >> 8 & 255,
        n & 255
    )
}

/// Registers `count` alive, available nodes booting from disk, and binds
/// `role` in `deployment` on each when given.
pub async fn add_nodes<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
    count: usize,
    bind_to: Option<(&str, &str)>,
) -> Result<(), BenchError> {
    let setup = |e: crate::domain::DomainError| BenchError::Setup(e.to_string());
    for n in 0..count {
        let name = node_name(n);
        crate::domain::nodes::create_node(
            db,
            NewNode {
                name: name.clone(),
                alive: true,
                available: true,
                bootenv: "local".into(),
                interfaces: vec![NewInterface {
                    mac: node_mac(n),
                    ip: None,
                    hostname: None,
                }],
                ..Default::default()
            },
        )
        .await
        .map_err(setup)?;
        if let Some((role, deployment)) = bind_to {
            bind(
                db,
                &BindRequest {
                    node: Key::Name(name),
                    role: Key::Name(role.into()),
                    deployment: Key::Name(deployment.into()),
                    data: None,
                },
            )
            .await
            .map_err(setup)?;
        }
    }
    Ok(())
}
