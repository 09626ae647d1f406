use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "node")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub admin: bool,
    pub alive: bool,
    pub available: bool,
    pub bootenv: String,
    pub target_os: Option<String>,
    pub deployment_id: i64,
    pub token_hash: Option<String>,
    pub token_due: bool,
    pub alive_since: Option<DateTimeUtc>,
    pub description: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::deployment::Entity",
        from = "Column::DeploymentId",
        to = "super::deployment::Column::Id"
    )]
    Deployment,
    #[sea_orm(has_many = "super::interface::Entity")]
    Interface,
    #[sea_orm(has_one = "super::node_inventory::Entity")]
    NodeInventory,
    #[sea_orm(has_many = "super::noderole::Entity")]
    Noderole,
    #[sea_orm(has_many = "super::run::Entity")]
    Run,
}

impl Related<super::deployment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Deployment.def()
    }
}

impl Related<super::interface::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Interface.def()
    }
}

impl Related<super::noderole::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Noderole.def()
    }
}

impl Related<super::run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Run.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
