//! `node_bmc`: how kiln reaches a node's baseboard management controller
//! (driver, address, credentials, the password sealed with a key the
//! database does not hold) and the power state its BMC last reported. One
//! row per node that has a BMC; a node without one has no row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NodeBmc {
    Table,
    NodeId,
    Driver,
    Address,
    Username,
    PasswordSealed,
    System,
    VerifyTls,
    PowerState,
    PowerCheckedAt,
    PowerError,
    PoweredOnAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Node {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NodeBmc::Table)
                    .col(big_integer(NodeBmc::NodeId).primary_key())
                    .col(string(NodeBmc::Driver))
                    .col(text(NodeBmc::Address).default(""))
                    .col(text(NodeBmc::Username).default(""))
                    .col(text_null(NodeBmc::PasswordSealed))
                    .col(text_null(NodeBmc::System))
                    .col(boolean(NodeBmc::VerifyTls).default(true))
                    .col(string(NodeBmc::PowerState).default("unknown"))
                    .col(timestamp_with_time_zone_null(NodeBmc::PowerCheckedAt))
                    .col(text_null(NodeBmc::PowerError))
                    // When kiln last powered the machine on (or cycled it):
                    // a machine that appears after it may be enrolled here.
                    .col(timestamp_with_time_zone_null(NodeBmc::PoweredOnAt))
                    .col(timestamp_with_time_zone(NodeBmc::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_node_bmc_node")
                            .from(NodeBmc::Table, NodeBmc::NodeId)
                            .to(Node::Table, Node::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Enrolment by BMC finds the node whose BMC a machine reports.
        manager
            .create_index(
                Index::create()
                    .name("ix_node_bmc_address")
                    .table(NodeBmc::Table)
                    .col(NodeBmc::Address)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NodeBmc::Table).to_owned())
            .await
    }
}
