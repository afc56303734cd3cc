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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
