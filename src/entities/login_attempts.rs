use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_id: i64,
    pub kind: Kind,
    pub ip: String,
    /// The account the attempt names: `#<user id>` for a known account,
    /// otherwise `name:` and the normalised name typed.
    pub account: Option<String>,
    pub created_at: DateTimeUtc,
    pub outcome: Outcome,
    /// The captcha challenge this attempt answered (each is good for one).
    pub captcha_nonce: Option<String>,
}

/// What was attempted, stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Kind {
    /// A password login (or the invite e-mail with a password that is not
    /// shaped like a code).
    #[sea_orm(string_value = "password")]
    Password,
    /// An invitation code tried, from either login form.
    #[sea_orm(string_value = "code")]
    Code,
    /// A password reset link asked for.
    #[sea_orm(string_value = "reset")]
    Reset,
    /// A reference request mailed to a referee (new, or sent again).
    #[sea_orm(string_value = "reference")]
    ReferenceMail,
    /// A visitor pass asked for by its visitor ("request access").
    #[sea_orm(string_value = "visitor-pass")]
    VisitorPass,
}

/// What came of an attempt, stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Outcome {
    /// Written, not yet judged (counts, like a failure).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Judged and refused: a wrong password or code.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Judged and let in.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// An action that counts whatever happened (a reset link asked for, a
    /// reference mail sent).
    #[sea_orm(string_value = "used")]
    Used,
    /// Not judged: the captcha was answered wrongly. Not counted; kept so
    /// that the question it spent cannot be answered again.
    #[sea_orm(string_value = "unanswered")]
    Unanswered,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
