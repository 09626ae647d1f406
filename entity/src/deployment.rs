use sea_orm::entity::prelude::*;

use crate::states::DeploymentState;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub parent_id: Option<i64>,
    pub state: DeploymentState,
    pub description: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "Entity", from = "Column::ParentId", to = "Column::Id")]
    Parent,
    #[sea_orm(has_many = "super::node::Entity")]
    Node,
    #[sea_orm(has_many = "super::noderole::Entity")]
    Noderole,
}

impl Related<super::node::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Node.def()
    }
}

impl Related<super::noderole::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Noderole.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
