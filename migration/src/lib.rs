//! Schema migrations: the single source of truth for kiln's tables.
//!
//! `entity/` mirrors what these create; domain code never depends on a
//! table shape that is not written here first.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_initial;
mod m20261203_000001_scheduled_reboots;
mod m20261203_000010_node_token_due;
mod m20261203_000020_node_inventory;
mod m20261203_000030_node_bmc;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial::Migration),
            Box::new(m20261203_000001_scheduled_reboots::Migration),
            Box::new(m20261203_000010_node_token_due::Migration),
            Box::new(m20261203_000030_node_bmc::Migration),
            Box::new(m20261203_000020_node_inventory::Migration),
        ]
    }
}
