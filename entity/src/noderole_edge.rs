use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "noderole_edge")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub parent_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub child_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::noderole::Entity",
        from = "Column::ParentId",
        to = "super::noderole::Column::Id",
        on_delete = "Cascade"
    )]
    Parent,
    #[sea_orm(
        belongs_to = "super::noderole::Entity",
        from = "Column::ChildId",
        to = "super::noderole::Column::Id",
        on_delete = "Cascade"
    )]
    Child,
}

impl ActiveModelBehavior for ActiveModel {}
