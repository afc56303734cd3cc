use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "visitor_logs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub visitor_id: String,
    pub session_hash: String,
    pub http_method: String,
    pub request_path: String,
    pub status_code: i32,
    pub remote_addr: String,
    pub user_agent: String,
    pub referer: String,
    pub timestamp: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
