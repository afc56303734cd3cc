use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_id: i64,
    /// What was attempted: see `attempts::Kind`.
    pub kind: String,
    pub ip: String,
    /// The account the attempt names: `#<user id>` for a known account,
    /// otherwise the normalised name typed.
    pub account: Option<String>,
    pub created_at: DateTimeUtc,
    /// What came of it: see `attempts::Outcome`.
    pub outcome: String,
    /// The captcha challenge this attempt answered (each is good for one).
    pub captcha_nonce: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
