//! The initial schema of DESIGN section 1, with the indexes the annealer
//! and the run queue read through, and the seed rows every kiln needs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deployment {
    Table,
    Id,
    Name,
    ParentId,
    State,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Role {
    Table,
    Id,
    Name,
    Jig,
    Discovery,
    Implicit,
    Destructive,
    Cluster,
    AdminOnly,
    Priority,
    Data,
    Scripts,
    Description,
}

#[derive(DeriveIden)]
enum RoleRequirement {
    Table,
    Id,
    RoleId,
    Requires,
}

#[derive(DeriveIden)]
enum Bootenv {
    Table,
    Id,
    Name,
    Kind,
    Kernel,
    Initrd,
    Append,
    Template,
    Description,
}

#[derive(DeriveIden)]
enum Network {
    Table,
    Id,
    Name,
    Subnet,
    Router,
    Dns,
    Domain,
    PoolStart,
    PoolEnd,
    LeaseSecs,
}

#[derive(DeriveIden)]
enum Node {
    Table,
    Id,
    Name,
    Admin,
    Alive,
    Available,
    Bootenv,
    TargetOs,
    DeploymentId,
    TokenHash,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Interface {
    Table,
    Id,
    NodeId,
    Mac,
    Ip,
    Hostname,
}

#[derive(DeriveIden)]
enum Noderole {
    Table,
    Id,
    NodeId,
    RoleId,
    DeploymentId,
    State,
    UnmetParents,
    RunCount,
    ProposedData,
    CommittedData,
    Wall,
    Runlog,
    Cohort,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NoderoleEdge {
    Table,
    ParentId,
    ChildId,
}

#[derive(DeriveIden)]
enum Run {
    Table,
    Id,
    NoderoleId,
    NodeId,
    Reason,
    State,
    Priority,
    QueueSeq,
    QueuedAt,
    StartedAt,
    FinishedAt,
    Error,
}

#[derive(DeriveIden)]
enum Lease {
    Table,
    Id,
    Mac,
    Ip,
    Hostname,
    ExpiresAt,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .on_update(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(name: &str, table: impl IntoIden, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create().name(name).table(table).to_owned();
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Deployments form a tree; a parent cannot be deleted while it has children.
        manager
            .create_table(
                Table::create()
                    .table(Deployment::Table)
                    .col(big_pk_auto(Deployment::Id))
                    .col(string_uniq(Deployment::Name))
                    .col(big_integer_null(Deployment::ParentId))
                    .col(string(Deployment::State).default("proposed"))
                    .col(text(Deployment::Description).default(""))
                    .col(timestamp_with_time_zone(Deployment::CreatedAt))
                    .col(timestamp_with_time_zone(Deployment::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_deployment_parent",
                        (Deployment::Table, Deployment::ParentId),
                        (Deployment::Table, Deployment::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Role::Table)
                    .col(big_pk_auto(Role::Id))
                    .col(string_uniq(Role::Name))
                    .col(string(Role::Jig))
                    .col(boolean(Role::Discovery).default(false))
                    .col(boolean(Role::Implicit).default(false))
                    .col(boolean(Role::Destructive).default(false))
                    .col(boolean(Role::Cluster).default(false))
                    .col(boolean(Role::AdminOnly).default(false))
                    .col(boolean(Role::Priority).default(false))
                    .col(json_binary(Role::Data))
                    .col(json_binary(Role::Scripts))
                    .col(text(Role::Description).default(""))
                    .to_owned(),
            )
            .await?;

        // Requirements name roles (cluster files may declare them in any order);
        // they go with the role that declares them.
        manager
            .create_table(
                Table::create()
                    .table(RoleRequirement::Table)
                    .col(big_pk_auto(RoleRequirement::Id))
                    .col(big_integer(RoleRequirement::RoleId))
                    .col(string(RoleRequirement::Requires))
                    .foreign_key(&mut fk(
                        "fk_role_requirement_role",
                        (RoleRequirement::Table, RoleRequirement::RoleId),
                        (Role::Table, Role::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_role_requirement",
                    RoleRequirement::Table,
                    &["role_id", "requires"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Bootenv::Table)
                    .col(big_pk_auto(Bootenv::Id))
                    .col(string_uniq(Bootenv::Name))
                    .col(string(Bootenv::Kind))
                    .col(string(Bootenv::Kernel).default(""))
                    .col(string(Bootenv::Initrd).default(""))
                    .col(text(Bootenv::Append).default(""))
                    .col(text(Bootenv::Template).default(""))
                    .col(text(Bootenv::Description).default(""))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Network::Table)
                    .col(big_pk_auto(Network::Id))
                    .col(string_uniq(Network::Name))
                    .col(string(Network::Subnet))
                    .col(string_null(Network::Router))
                    .col(json_binary(Network::Dns))
                    .col(string(Network::Domain).default(""))
                    .col(string_null(Network::PoolStart))
                    .col(string_null(Network::PoolEnd))
                    .col(integer(Network::LeaseSecs).default(3600))
                    .to_owned(),
            )
            .await?;

        // A node's bootenv must exist; deleting a bootenv in use is refused.
        // A node's deployment cannot be deleted from under it.
        manager
            .create_table(
                Table::create()
                    .table(Node::Table)
                    .col(big_pk_auto(Node::Id))
                    .col(string_uniq(Node::Name))
                    .col(boolean(Node::Admin).default(false))
                    .col(boolean(Node::Alive).default(false))
                    .col(boolean(Node::Available).default(true))
                    .col(string(Node::Bootenv))
                    .col(string_null(Node::TargetOs))
                    .col(big_integer(Node::DeploymentId))
                    .col(string_null(Node::TokenHash))
                    .col(text(Node::Description).default(""))
                    .col(timestamp_with_time_zone(Node::CreatedAt))
                    .col(timestamp_with_time_zone(Node::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_node_bootenv",
                        (Node::Table, Node::Bootenv),
                        (Bootenv::Table, Bootenv::Name),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_node_deployment",
                        (Node::Table, Node::DeploymentId),
                        (Deployment::Table, Deployment::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;

        // Interfaces die with their node; MACs and addresses are unique.
        manager
            .create_table(
                Table::create()
                    .table(Interface::Table)
                    .col(big_pk_auto(Interface::Id))
                    .col(big_integer(Interface::NodeId))
                    .col(string_uniq(Interface::Mac))
                    .col(string_null(Interface::Ip).unique_key())
                    .col(string_null(Interface::Hostname))
                    .foreign_key(&mut fk(
                        "fk_interface_node",
                        (Interface::Table, Interface::NodeId),
                        (Node::Table, Node::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("ix_interface_node", Interface::Table, &["node_id"]))
            .await?;

        // Noderoles die with their node or deployment; a role in use cannot be deleted.
        manager
            .create_table(
                Table::create()
                    .table(Noderole::Table)
                    .col(big_pk_auto(Noderole::Id))
                    .col(big_integer(Noderole::NodeId))
                    .col(big_integer(Noderole::RoleId))
                    .col(big_integer(Noderole::DeploymentId))
                    .col(string(Noderole::State).default("proposed"))
                    .col(integer(Noderole::UnmetParents).default(0))
                    .col(integer(Noderole::RunCount).default(0))
                    .col(json_binary(Noderole::ProposedData))
                    .col(json_binary(Noderole::CommittedData))
                    .col(json_binary(Noderole::Wall))
                    .col(text(Noderole::Runlog).default(""))
                    .col(integer(Noderole::Cohort).default(0))
                    .col(timestamp_with_time_zone(Noderole::CreatedAt))
                    .col(timestamp_with_time_zone(Noderole::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_noderole_node",
                        (Noderole::Table, Noderole::NodeId),
                        (Node::Table, Node::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_noderole_role",
                        (Noderole::Table, Noderole::RoleId),
                        (Role::Table, Role::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_noderole_deployment",
                        (Noderole::Table, Noderole::DeploymentId),
                        (Deployment::Table, Deployment::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_noderole_binding",
                    Noderole::Table,
                    &["node_id", "role_id", "deployment_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        // The annealer's ready set: todo with no unmet parent.
        manager
            .create_index(index(
                "ix_noderole_ready",
                Noderole::Table,
                &["state", "unmet_parents"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_noderole_node",
                Noderole::Table,
                &["node_id", "state"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_noderole_deployment",
                Noderole::Table,
                &["deployment_id", "state"],
            ))
            .await?;
        manager
            .create_index(index("ix_noderole_role", Noderole::Table, &["role_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NoderoleEdge::Table)
                    .col(big_integer(NoderoleEdge::ParentId))
                    .col(big_integer(NoderoleEdge::ChildId))
                    .primary_key(
                        Index::create()
                            .col(NoderoleEdge::ParentId)
                            .col(NoderoleEdge::ChildId),
                    )
                    .foreign_key(&mut fk(
                        "fk_edge_parent",
                        (NoderoleEdge::Table, NoderoleEdge::ParentId),
                        (Noderole::Table, Noderole::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_edge_child",
                        (NoderoleEdge::Table, NoderoleEdge::ChildId),
                        (Noderole::Table, Noderole::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("ix_edge_child", NoderoleEdge::Table, &["child_id"]))
            .await?;

        // Runs are history: they go when their noderole goes.
        manager
            .create_table(
                Table::create()
                    .table(Run::Table)
                    .col(big_pk_auto(Run::Id))
                    .col(big_integer(Run::NoderoleId))
                    .col(big_integer(Run::NodeId))
                    .col(string(Run::Reason))
                    .col(string(Run::State).default("queued"))
                    .col(boolean(Run::Priority).default(false))
                    .col(big_integer(Run::QueueSeq))
                    .col(timestamp_with_time_zone(Run::QueuedAt))
                    .col(timestamp_with_time_zone_null(Run::StartedAt))
                    .col(timestamp_with_time_zone_null(Run::FinishedAt))
                    .col(text_null(Run::Error))
                    .foreign_key(&mut fk(
                        "fk_run_noderole",
                        (Run::Table, Run::NoderoleId),
                        (Noderole::Table, Noderole::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_run_node",
                        (Run::Table, Run::NodeId),
                        (Node::Table, Node::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("ix_run_queue", Run::Table, &["state", "queue_seq"]))
            .await?;
        manager
            .create_index(index("ix_run_node", Run::Table, &["node_id", "state"]))
            .await?;
        manager
            .create_index(index(
                "ix_run_noderole",
                Run::Table,
                &["noderole_id", "state"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Lease::Table)
                    .col(big_pk_auto(Lease::Id))
                    .col(string_uniq(Lease::Mac))
                    .col(string_uniq(Lease::Ip))
                    .col(string_null(Lease::Hostname))
                    .col(timestamp_with_time_zone(Lease::ExpiresAt))
                    .to_owned(),
            )
            .await?;

        seed(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Lease::Table.into_iden(),
            Run::Table.into_iden(),
            NoderoleEdge::Table.into_iden(),
            Noderole::Table.into_iden(),
            Interface::Table.into_iden(),
            Node::Table.into_iden(),
            Network::Table.into_iden(),
            Bootenv::Table.into_iden(),
            RoleRequirement::Table.into_iden(),
            Role::Table.into_iden(),
            Deployment::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The rows kiln cannot run without: the `system` deployment (root of the
/// tree) and the two bootenvs every node may be in before any cluster file.
async fn seed(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let now = Expr::current_timestamp();
    manager
        .exec_stmt(
            Query::insert()
                .into_table(Deployment::Table)
                .columns([
                    Deployment::Name,
                    Deployment::State,
                    Deployment::Description,
                    Deployment::CreatedAt,
                    Deployment::UpdatedAt,
                ])
                .values_panic([
                    "system".into(),
                    "committed".into(),
                    "The root deployment; every node starts here.".into(),
                    now.clone(),
                    now,
                ])
                .to_owned(),
        )
        .await?;
    manager
        .exec_stmt(
            Query::insert()
                .into_table(Bootenv::Table)
                .columns([
                    Bootenv::Name,
                    Bootenv::Kind,
                    Bootenv::Kernel,
                    Bootenv::Initrd,
                    Bootenv::Append,
                    Bootenv::Description,
                ])
                .values_panic([
                    "sledgehammer".into(),
                    "ipxe".into(),
                    "sledgehammer/vmlinuz".into(),
                    "sledgehammer/initrd.img".into(),
                    "kiln.node={{node_name}} kiln.token={{node_token}} kiln.api={{api_url}}".into(),
                    "Discovery image: inventories the machine and reports it alive.".into(),
                ])
                .values_panic([
                    "local".into(),
                    "local".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "Boot from the local disk.".into(),
                ])
                .to_owned(),
        )
        .await
}
