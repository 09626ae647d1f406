use sea_orm::entity::prelude::*;

use crate::states::JigKind;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "role")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub jig: JigKind,
    pub discovery: bool,
    pub implicit: bool,
    pub destructive: bool,
    pub cluster: bool,
    pub admin_only: bool,
    pub priority: bool,
    pub data: Json,
    pub scripts: Json,
    pub description: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::role_requirement::Entity")]
    RoleRequirement,
    #[sea_orm(has_many = "super::noderole::Entity")]
    Noderole,
}

impl Related<super::role_requirement::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoleRequirement.def()
    }
}

impl Related<super::noderole::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Noderole.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
