//! `node.token_due`: whether the node's next boot script may issue it a
//! fresh node token. A node is created owing one; the boot route that
//! issues it clears the flag, so a second fetch in the same boot cannot
//! replace the token the machine already holds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::boolean;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Node {
    Table,
    TokenDue,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Node::Table)
                    .add_column(boolean(Node::TokenDue).default(true))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Node::Table)
                    .drop_column(Node::TokenDue)
                    .to_owned(),
            )
            .await
    }
}
