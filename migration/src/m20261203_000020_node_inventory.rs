//! `node_inventory`: what a machine reported about its hardware from the
//! discovery image (one row per node, replaced by each report), with the
//! two numbers lists filter on as columns of their own; and
//! `node.alive_since`, when the node last came back alive, so the
//! inventory role can tell a report of this boot from one of an earlier.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NodeInventory {
    Table,
    NodeId,
    Document,
    MemoryMib,
    DiskCount,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum Node {
    Table,
    Id,
    AliveSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NodeInventory::Table)
                    .col(big_integer(NodeInventory::NodeId).primary_key())
                    .col(json_binary(NodeInventory::Document))
                    .col(big_integer(NodeInventory::MemoryMib))
                    .col(integer(NodeInventory::DiskCount))
                    .col(timestamp_with_time_zone(NodeInventory::ReceivedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_node_inventory_node")
                            .from(NodeInventory::Table, NodeInventory::NodeId)
                            .to(Node::Table, Node::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Node::Table)
                    .add_column(timestamp_with_time_zone_null(Node::AliveSince))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Node::Table)
                    .drop_column(Node::AliveSince)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(NodeInventory::Table).to_owned())
            .await
    }
}
