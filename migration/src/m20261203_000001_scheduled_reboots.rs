//! Scheduled reboots as rows: a reboot a run scheduled is written in the
//! transaction that records the run's result, so a kiln that crashes during
//! the reboot delay performs it after its restart instead of losing it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reboot {
    Table,
    Id,
    NodeId,
    NoderoleId,
    DueAt,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Node {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Noderole {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A deleted node owes no reboot; a deleted noderole leaves the
        // machine's reboot to happen, answered for by nobody.
        manager
            .create_table(
                Table::create()
                    .table(Reboot::Table)
                    .col(big_pk_auto(Reboot::Id))
                    .col(big_integer(Reboot::NodeId))
                    .col(big_integer_null(Reboot::NoderoleId))
                    .col(timestamp_with_time_zone(Reboot::DueAt))
                    .col(text(Reboot::Reason).default(""))
                    .col(timestamp_with_time_zone(Reboot::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reboot_node")
                            .from(Reboot::Table, Reboot::NodeId)
                            .to(Node::Table, Node::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reboot_noderole")
                            .from(Reboot::Table, Reboot::NoderoleId)
                            .to(Noderole::Table, Noderole::Id)
                            .on_delete(ForeignKeyAction::SetNull)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_reboot_node")
                    .table(Reboot::Table)
                    .col(Reboot::NodeId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Reboot::Table).to_owned())
            .await
    }
}
