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
    /// As stored; "expired" is derived (see `references::state_of`).
    pub status: Status,
    pub answers: Option<Json>,
    pub created_at: DateTimeUtc,
    pub link_expires_at: DateTimeUtc,
    pub opened_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
}

/// How far a request has got, stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    /// The referee was sent a link.
    #[sea_orm(string_value = "requested")]
    Requested,
    /// The referee has followed the link.
    #[sea_orm(string_value = "opened")]
    Opened,
    /// The referee confirmed their reference.
    #[sea_orm(string_value = "completed")]
    Completed,
    /// The member withdrew the request.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
