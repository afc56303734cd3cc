use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "visitors")]
pub struct Model {
    /// Public id (UUIDv4, hyphenated), distinct from the link token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub site_id: i64,
    /// SHA-256 (hex) of the link token.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub scope: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub context: Option<Json>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub is_active: bool,
    pub session_expiry_secs: i64,
    pub created_by: Option<i64>,
    /// Why the link stopped working, when it was switched off (not for
    /// expiry, which `expires_at` tells); NULL while it works.
    pub ended_reason: Option<EndedReason>,
    pub ended_at: Option<DateTimeUtc>,
}

/// Why a link was switched off, stored as its name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EndedReason {
    /// Its holder sent the reference it was for.
    #[sea_orm(string_value = "reference_sent")]
    ReferenceSent,
    /// A newer link was sent to the same person for the same thing.
    #[sea_orm(string_value = "replaced")]
    Replaced,
    /// The member who asked for the reference withdrew the request.
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
    /// Staff switched it off.
    #[sea_orm(string_value = "deactivated")]
    Deactivated,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
