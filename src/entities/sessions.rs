use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// SHA-256 (hex) of the session key held in the cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: Option<i64>,
    pub visitor_id: Option<String>,
    /// The invite this session was started with (mirrors the state).
    pub invite_id: Option<i64>,
    /// Set when that invite is revoked: the session ends on its next request.
    pub invite_revoked: bool,
    pub data: String,
    pub expires_at: DateTimeUtc,
    /// When the member logged in (carried across a renewal of the id).
    pub started_at: Option<DateTimeUtc>,
    /// The last request, to within `sessions::LAST_SEEN_PRECISION`.
    pub last_seen_at: Option<DateTimeUtc>,
    /// The browser's User-Agent at login (at most 300 characters).
    pub user_agent: String,
    /// The client's network at login (IPv4 /24, IPv6 /48), not the address.
    pub client_ip: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
