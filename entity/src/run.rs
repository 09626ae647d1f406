use sea_orm::entity::prelude::*;

use crate::states::RunState;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "run")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub noderole_id: i64,
    pub node_id: i64,
    pub reason: String,
    pub state: RunState,
    pub priority: bool,
    pub queue_seq: i64,
    pub queued_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::noderole::Entity",
        from = "Column::NoderoleId",
        to = "super::noderole::Column::Id",
        on_delete = "Cascade"
    )]
    Noderole,
    #[sea_orm(
        belongs_to = "super::node::Entity",
        from = "Column::NodeId",
        to = "super::node::Column::Id",
        on_delete = "Cascade"
    )]
    Node,
}

impl Related<super::noderole::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Noderole.def()
    }
}

impl Related<super::node::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Node.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
