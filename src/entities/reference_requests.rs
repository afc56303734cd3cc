use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reference_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_id: i64,
    pub requester_id: i64,
    pub visitor_id: Option<String>,
    pub referee_name: String,
    pub referee_email: String,
    pub message: String,
    /// requested, opened, completed or cancelled ("expired" is derived).
    pub status: String,
    pub answers: Option<Json>,
    pub created_at: DateTimeUtc,
    pub link_expires_at: DateTimeUtc,
    pub opened_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
