use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_id: i64,
    pub invite_id: Option<i64>,
    pub sender: String,
    pub recipient: String,
    pub subject: String,
    /// The sealed text and HTML parts; `None` once delivered.
    pub body: Option<Vec<u8>>,
    pub status: Status,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub next_attempt_at: DateTimeUtc,
    pub last_attempt_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
}

/// Where a message is in its delivery, stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    /// Waiting for its next attempt.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Handed to the mail server; the body is erased.
    #[sea_orm(string_value = "sent")]
    Sent,
    /// The attempts ran out (or the mail server refused it for good): it
    /// waits for staff to retry it.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Not delivered and never will be: what it announced was withdrawn.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
