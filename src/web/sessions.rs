//! Sessions (actix-session's `SessionStore`). The session of a member or a
//! visitor is a row of the `sessions` table, so it survives restarts, is
//! shared by every instance and can be ended from the server. Rows are keyed
//! by the SHA-256 of the cookie's session key: the table alone cannot be
//! replayed as cookies.
//!
//! Anonymous state (a message for the next page, a captcha challenge) writes
//! no row: it travels in the cookie itself, sealed (XChaCha20-Poly1305: the
//! browser can neither read nor change it) with an expiry inside. So no
//! script can fill the table by asking for captcha questions or trying bad
//! links, and anonymous pages cost no database write.
//!
//! Loading a session also brings, in the same query, the member and visitor
//! rows it points at (`user_id`, `visitor_id` mirror the state) and whether
//! the invite it was started with has been revoked (`invite_id` mirrors the
//! state; `invite_revoked` is set by the revocation): they are handed to the
//! auth and visitor middlewares under reserved keys that are never written
//! back. One query per request instead of three, and the rows are still read
//! fresh on every request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::body::MessageBody;
use actix_web::cookie::time::Duration;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    ExprTrait, FromQueryResult, IdenStatic, Iterable, QueryFilter, QueryTrait, Statement,
};

use super::session_cache::{Owners, RowId, SessionCache, Subject};
use crate::db::Lane;
use crate::entities::{sessions, users, visitors};
use crate::secrets::{SealingKey, os_rng, sha256_hex};

/// Session key under which actix-identity keeps the logged-in user's id.
const IDENTITY_KEY: &str = "actix_identity.user_id";
/// Session key holding the invite id when the session was started with a
/// code (set by `auth::log_in`).
pub const INVITE_SESSION_KEY: &str = "auth.invite_id";
/// Reserved keys: the rows loaded with the session (`loaded_form`). Never
/// saved.
pub const LOADED_USER_KEY: &str = "gatehouse.loaded-user";
pub const LOADED_VISITOR_KEY: &str = "gatehouse.loaded-visitor";
/// Reserved key: `true` when the invite this session was started with has
/// been revoked (`sessions.invite_revoked`). Never saved.
pub const LOADED_INVITE_REVOKED_KEY: &str = "gatehouse.invite-revoked";
/// Reserved key: this session's row id, so that a member's Sessions page
/// can tell which of their sessions is the one asking. Never saved.
pub const LOADED_SESSION_ID_KEY: &str = "gatehouse.session-id";
/// Session key holding where and when a member logged in (`ClientInfo`,
/// set by `auth::log_in`), mirrored into columns for the Sessions page.
pub const CLIENT_SESSION_KEY: &str = "auth.client";
/// `last_seen_at` is written when it is older than this, so that a busy
/// session costs one extra write every few minutes, not one per request.
pub const LAST_SEEN_PRECISION_SECS: i64 = 300;

/// Where and when a member's session started, kept in the session state so
/// that a renewed session id keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    /// Unix seconds.
    pub started_at: i64,
    /// The User-Agent header, cut to 300 characters.
    pub user_agent: String,
    /// The client's network (see `approximate_address`).
    pub client_ip: String,
}

#[derive(Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
    /// For new rows: a login's last round trip (see `db::Lane`).
    lane: Arc<Lane>,
    /// The session key holding the visitor's id (`visitors.session_key`).
    visitor_key: String,
    /// Seals anonymous state into the cookie.
    sealing: SealingKey,
    /// Rows read lately; the database stays the truth.
    cache: SessionCache,
}

/// Session keys of anonymous state start with this; database keys never do
/// (they are alphanumeric).
const SEALED_PREFIX: &str = "a.";
/// Sealed state may be at most this long, so the signed cookie stays well
/// inside browsers' 4 KiB.
const MAX_SEALED_KEY_LEN: usize = 2800;
/// Anonymous state is short-lived whatever the session lifetime.
const SEALED_MAX_AGE_SECS: i64 = 24 * 3600;
const SEALED_CONTEXT: &[u8] = b"gatehouse/anonymous-session";

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedState {
    expires_at: i64,
    state: State,
}

impl DbSessionStore {
    pub fn new(
        db: DatabaseConnection,
        lane: Arc<Lane>,
        visitor_key: impl Into<String>,
        sealing: SealingKey,
        cache: SessionCache,
    ) -> Self {
        Self {
            db,
            lane,
            visitor_key: visitor_key.into(),
            sealing,
            cache,
        }
    }

    /// A session with a member or a visitor is kept in the database.
    fn has_principal(&self, state: &State) -> bool {
        state.contains_key(IDENTITY_KEY) || state.contains_key(&self.visitor_key)
    }

    /// Anonymous state sealed into a session key, if it is small enough.
    fn seal(&self, state: &State, ttl: &Duration) -> Option<SessionKey> {
        let sealed = SealedState {
            expires_at: Utc::now().timestamp() + Ord::min(ttl.whole_seconds(), SEALED_MAX_AGE_SECS),
            state: state.clone(),
        };
        let plain = serde_json::to_vec(&sealed).ok()?;
        let key = format!(
            "{SEALED_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.sealing.seal(SEALED_CONTEXT, &plain))
        );
        if key.len() > MAX_SEALED_KEY_LEN {
            return None;
        }
        SessionKey::try_from(key).ok()
    }

    /// The anonymous state sealed in `key`; `None` if it does not open or
    /// has expired (the browser then starts afresh).
    fn open(&self, key: &str) -> Option<State> {
        let sealed = URL_SAFE_NO_PAD
            .decode(key.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        let plain = self.sealing.open(SEALED_CONTEXT, &sealed).ok()?;
        let sealed: SealedState = serde_json::from_slice(&plain).ok()?;
        (sealed.expires_at > Utc::now().timestamp()).then_some(sealed.state)
    }

    async fn insert_row(&self, state: &State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let data = Self::serialise(state).map_err(|err| SaveError::Serialization(err.into()))?;
        let key = new_session_key();
        let client = client_of(state);
        let now = Utc::now();
        let row = sessions::Entity::insert(sessions::ActiveModel {
            id: Set(row_id(&key)),
            user_id: Set(user_id_of(state)),
            visitor_id: Set(self.visitor_id_of(state)),
            invite_id: Set(invite_id_of(state)),
            invite_revoked: Set(false),
            data: Set(data),
            expires_at: Set(expires_at(ttl)),
            started_at: Set(Some(
                client
                    .as_ref()
                    .and_then(|client| chrono::DateTime::from_timestamp(client.started_at, 0))
                    .unwrap_or(now),
            )),
            last_seen_at: Set(Some(now)),
            user_agent: Set(client
                .as_ref()
                .map(|client| client.user_agent.clone())
                .unwrap_or_default()),
            client_ip: Set(client.map(|client| client.client_ip).unwrap_or_default()),
        })
        .build(self.db.get_database_backend());
        let waiting = WITH_NEW_ROW.try_with(RefCell::take).unwrap_or_default();
        crate::db::execute_together(&self.db, &self.lane, waiting.into_iter().chain([row]))
            .await
            .map_err(|err| SaveError::Other(err.into()))?;
        Ok(key)
    }

    fn visitor_id_of(&self, state: &State) -> Option<String> {
        serde_json::from_str(state.get(&self.visitor_key)?).ok()
    }

    /// A session row with the member and visitor rows it points at, when it
    /// expires, and whose it is (for the cache).
    async fn read_row(
        &self,
        row_id: &str,
    ) -> Result<Option<(State, chrono::DateTime<Utc>, Owners)>, LoadError> {
        let other = |err: DbErr| LoadError::Other(err.into());
        let other_json = |err: serde_json::Error| LoadError::Other(err.into());
        let select = session_with_rows(row_id);
        let Some(row) = self.db.query_one(&select).await.map_err(other)? else {
            return Ok(None);
        };
        let expires_at: chrono::DateTime<Utc> = row.try_get("", "expires_at").map_err(other)?;
        if expires_at <= Utc::now() {
            return Ok(None);
        }
        // Read from the database at least every `sessions.cache_seconds`, so
        // "last seen" stays within that of its precision.
        let last_seen_at: Option<chrono::DateTime<Utc>> =
            row.try_get("", "last_seen_at").map_err(other)?;
        self.touch(row_id, last_seen_at).await.map_err(other)?;
        let data: String = row.try_get("", "data").map_err(other)?;
        let mut state: State =
            serde_json::from_str(&data).map_err(|err| LoadError::Deserialization(err.into()))?;
        let invite_revoked: bool = row.try_get("", "invite_revoked").map_err(other)?;
        let owners = Owners {
            user: row.try_get("", "user_id").map_err(other)?,
            visitor: row.try_get("", "visitor_id").map_err(other)?,
        };
        if invite_revoked {
            state.insert(LOADED_INVITE_REVOKED_KEY.to_owned(), "true".to_owned());
        }
        let user = users::Model::from_query_result_optional(&row, "u_").map_err(other)?;
        if let Some(mut user) = user {
            // Whether there is a password is all a request needs; the hash
            // itself stays out of the session and its cache.
            user.password_hash = user.password_hash.map(|_| String::new());
            state.insert(
                LOADED_USER_KEY.to_owned(),
                loaded_form(&user).map_err(other_json)?,
            );
        }
        let visitor = visitors::Model::from_query_result_optional(&row, "v_").map_err(other)?;
        if let Some(mut visitor) = visitor {
            // Nor does the link's token hash.
            visitor.token_hash = String::new();
            state.insert(
                LOADED_VISITOR_KEY.to_owned(),
                loaded_form(&visitor).map_err(other_json)?,
            );
        }
        Ok(Some((state, expires_at, owners)))
    }

    /// This instance stops using its copy at once (the database tells the
    /// other instances).
    fn forget(&self, session_key: &SessionKey) {
        if let Some(row) = RowId::from_hex(&row_id(session_key)) {
            self.cache.changed(Subject::Session(row));
        }
    }

    /// Records that the session was used, when the last record is older
    /// than `LAST_SEEN_PRECISION_SECS`.
    async fn touch(
        &self,
        id: &str,
        last_seen_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let stale =
            last_seen_at.is_none_or(|at| (now - at).num_seconds() >= LAST_SEEN_PRECISION_SECS);
        if stale {
            sessions::Entity::update_many()
                .col_expr(sessions::Column::LastSeenAt, Expr::value(Some(now)))
                .filter(sessions::Column::Id.eq(id))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// The state as stored: without the rows loaded alongside it.
    fn serialise(state: &State) -> serde_json::Result<String> {
        let mut kept = state.clone();
        kept.remove(LOADED_USER_KEY);
        kept.remove(LOADED_VISITOR_KEY);
        kept.remove(LOADED_INVITE_REVOKED_KEY);
        kept.remove(LOADED_SESSION_ID_KEY);
        serde_json::to_string(&kept)
    }
}

tokio::task_local! {
    /// Writes waiting to go with this request's new session row
    /// (`write_with_new_row`).
    static WITH_NEW_ROW: RefCell<Vec<Statement>>;
}

/// Runs `writes` in the same command as the session row this request is
/// about to save (`db::execute_together`), before the response goes: a
/// login's record of itself and its session then cost one round trip, not
/// two. Outside `hold_writes_for_new_row` they run at once; if no row is saved
/// after all, that middleware runs them.
pub async fn write_with_new_row(
    db: &DatabaseConnection,
    lane: &Lane,
    writes: impl IntoIterator<Item = Statement>,
) -> Result<(), DbErr> {
    let mut writes: Vec<Statement> = writes.into_iter().collect();
    let deferred = WITH_NEW_ROW.try_with(|waiting| waiting.borrow_mut().append(&mut writes));
    match deferred {
        Ok(()) => Ok(()),
        Err(_) => crate::db::execute_together(db, lane, writes).await,
    }
}

/// Middleware, just outside the session middleware: where a request that
/// may write (any method but GET, HEAD, OPTIONS) can leave writes for its
/// new session row (`write_with_new_row`). Those no row took (no member or
/// visitor session was saved) run here, before the response goes.
pub async fn hold_writes_for_new_row(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !super::may_write(&req) {
        return next.call(req).await;
    }
    let state = super::app_state(&req);
    let (response, left) = deferring_writes(next.call(req)).await;
    if !left.is_empty() {
        crate::db::execute_together(&state.db, &state.lane, left)
            .await
            .map_err(crate::error::AppError::from)?;
    }
    response
}

/// Runs `work` where `write_with_new_row` defers writes; gives back its
/// output and the writes no new row took.
async fn deferring_writes<T>(work: impl Future<Output = T>) -> (T, Vec<Statement>) {
    WITH_NEW_ROW
        .scope(RefCell::default(), async move {
            let output = work.await;
            (output, WITH_NEW_ROW.with(RefCell::take))
        })
        .await
}

/// A row as it is loaded into the session (and so into the session cache):
/// the JSON of its fields' values in their order, without their names,
/// which would be a third of every cached session. Serde reads a struct from
/// either form.
pub fn loaded_form(row: &impl serde::Serialize) -> serde_json::Result<String> {
    /// The values of a JSON object, in their order.
    struct Values<'a>(Vec<&'a serde_json::value::RawValue>);

    impl<'de: 'a, 'a> serde::Deserialize<'de> for Values<'a> {
        fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Values<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<M: serde::de::MapAccess<'de>>(
                    self,
                    mut map: M,
                ) -> Result<Values<'de>, M::Error> {
                    let mut values = Vec::new();
                    while let Some((_, value)) = map.next_entry::<serde::de::IgnoredAny, _>()? {
                        values.push(value);
                    }
                    Ok(Values(values))
                }
            }
            from.deserialize_map(Visitor)
        }
    }

    let object = serde_json::to_string(row)?;
    let Values(values) = serde_json::from_str(&object)?;
    let values: Vec<&str> = values.iter().map(|value| value.get()).collect();
    Ok(format!("[{}]", values.join(",")))
}

/// The member or visitor row loaded with this request's session, if any
/// (otherwise the caller queries it).
pub fn loaded_row<T: serde::de::DeserializeOwned>(
    session: &actix_session::Session,
    key: &str,
) -> Option<T> {
    session.get::<T>(key).ok().flatten()
}

type State = HashMap<String, String>;

/// The session row with its member's and visitor's rows (`u_*`, `v_*`).
fn session_with_rows(row_id: &str) -> sea_orm::sea_query::SelectStatement {
    let mut select = Query::select();
    select
        .column((sessions::Entity, sessions::Column::Data))
        .column((sessions::Entity, sessions::Column::ExpiresAt))
        .column((sessions::Entity, sessions::Column::InviteRevoked))
        .column((sessions::Entity, sessions::Column::UserId))
        .column((sessions::Entity, sessions::Column::VisitorId))
        .column((sessions::Entity, sessions::Column::LastSeenAt))
        .from(sessions::Entity)
        .left_join(
            users::Entity,
            Expr::col((users::Entity, users::Column::Id))
                .equals((sessions::Entity, sessions::Column::UserId)),
        )
        .left_join(
            visitors::Entity,
            Expr::col((visitors::Entity, visitors::Column::Id))
                .equals((sessions::Entity, sessions::Column::VisitorId)),
        )
        .and_where(Expr::col((sessions::Entity, sessions::Column::Id)).eq(row_id));
    for column in users::Column::iter() {
        select.expr_as(
            Expr::col((users::Entity, column)),
            Alias::new(format!("u_{}", column.as_str())),
        );
    }
    for column in visitors::Column::iter() {
        select.expr_as(
            Expr::col((visitors::Entity, column)),
            Alias::new(format!("v_{}", column.as_str())),
        );
    }
    select
}

fn is_sealed(key: &SessionKey) -> bool {
    key.as_ref().starts_with(SEALED_PREFIX)
}

fn row_id(key: &SessionKey) -> String {
    sha256_hex(key.as_ref().as_bytes())
}

fn expires_at(ttl: &Duration) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(ttl.whole_seconds())
}

/// The user id stored by actix-identity, mirrored into a column so that an
/// account's sessions can be found and ended.
fn user_id_of(state: &State) -> Option<i64> {
    let raw = state.get(IDENTITY_KEY)?;
    serde_json::from_str::<String>(raw).ok()?.parse().ok()
}

/// The invite a code session was started with, mirrored into a column so
/// that revoking the invite can find and end its sessions.
fn invite_id_of(state: &State) -> Option<i64> {
    serde_json::from_str(state.get(INVITE_SESSION_KEY)?).ok()
}

/// Where and when the member logged in, as `auth::log_in` stored it.
fn client_of(state: &State) -> Option<ClientInfo> {
    serde_json::from_str(state.get(CLIENT_SESSION_KEY)?).ok()
}

/// An address shortened to its network, for the Sessions page: the first
/// three bytes of an IPv4 address (a /24), the first three groups of an IPv6
/// one (a /48). Enough to recognise a place, not a machine.
pub fn approximate_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => String::new(),
    }
}

fn new_session_key() -> SessionKey {
    // One draw from the OS (a 256-bit seed) per key, not one per character.
    let mut rng = StdRng::from_rng(&mut os_rng());
    let key = Alphanumeric.sample_string(&mut rng, 64);
    SessionKey::try_from(key).expect("64 characters is a valid session key")
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        if is_sealed(session_key) {
            return Ok(self.open(session_key.as_ref()));
        }
        let row_id = row_id(session_key);
        let Some(mut state) = self
            .cache
            .get_or_read(&row_id, || self.read_row(&row_id))
            .await?
        else {
            return Ok(None);
        };
        // Known from the key, so not kept in the cache.
        let session_id =
            serde_json::to_string(&row_id).map_err(|err| LoadError::Deserialization(err.into()))?;
        state.insert(LOADED_SESSION_ID_KEY.to_owned(), session_id);
        Ok(Some(state))
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        if self.has_principal(&state) {
            return self.insert_row(&state, ttl).await;
        }
        if let Some(key) = self.seal(&state, ttl) {
            return Ok(key);
        }
        // Anonymous state never becomes a row; state too large to seal (it
        // should not happen: messages are capped) is dropped, not stored.
        log::warn!("Dropped an anonymous session's state that was too large to keep.");
        self.seal(&State::new(), ttl).ok_or_else(|| {
            SaveError::Other(anyhow::anyhow!("an empty session could not be sealed"))
        })
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let to_update_error = |err| match err {
            SaveError::Serialization(err) => UpdateError::Serialization(err),
            SaveError::Other(err) => UpdateError::Other(err),
        };
        if !self.has_principal(&state) {
            // Now anonymous (a visitor's pass ended, say): the row goes.
            if !is_sealed(&session_key) {
                self.delete(&session_key)
                    .await
                    .map_err(UpdateError::Other)?;
            }
            return self.save(state, ttl).await.map_err(to_update_error);
        }
        if is_sealed(&session_key) {
            return self.insert_row(&state, ttl).await.map_err(to_update_error);
        }
        let data = Self::serialise(&state).map_err(|err| UpdateError::Serialization(err.into()))?;
        // Only existing rows are updated. A row that vanished while this
        // request ran was ended (logout elsewhere, password change, expiry):
        // writing its state back would resurrect the login, so the browser
        // gets a fresh, empty session instead.
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::Data, data.into())
            .col_expr(sessions::Column::UserId, user_id_of(&state).into())
            .col_expr(
                sessions::Column::VisitorId,
                self.visitor_id_of(&state).into(),
            )
            .col_expr(sessions::Column::InviteId, invite_id_of(&state).into())
            .col_expr(sessions::Column::ExpiresAt, expires_at(ttl).into())
            .filter(sessions::Column::Id.eq(row_id(&session_key)))
            .exec(&self.db)
            .await
            .map_err(|err| UpdateError::Other(err.into()))?;
        self.forget(&session_key);
        if result.rows_affected == 1 {
            return Ok(session_key);
        }
        self.save(State::new(), ttl).await.map_err(to_update_error)
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        if is_sealed(session_key) {
            return Ok(());
        }
        sessions::Entity::update_many()
            .col_expr(sessions::Column::ExpiresAt, expires_at(ttl).into())
            .filter(sessions::Column::Id.eq(row_id(session_key)))
            .exec(&self.db)
            .await?;
        self.forget(session_key);
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        if is_sealed(session_key) {
            return Ok(());
        }
        sessions::Entity::delete_by_id(row_id(session_key))
            .exec(&self.db)
            .await?;
        self.forget(session_key);
        Ok(())
    }
}

/// Ends every session of an account (the caller's own session survives if it
/// was renewed in the same request: it is written back under a new key).
pub async fn end_sessions_of_user(db: &DatabaseConnection, user_id: i64) -> Result<u64, DbErr> {
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Ends the sessions started with an invite's code, on their next request
/// (which says why): the store never writes `invite_revoked`, so a request
/// in flight cannot undo it.
pub async fn end_code_sessions(db: &impl ConnectionTrait, invite_id: i64) -> Result<u64, DbErr> {
    let result = sessions::Entity::update_many()
        .col_expr(sessions::Column::InviteRevoked, Expr::value(true))
        .filter(sessions::Column::InviteId.eq(invite_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Ends one session of a member (their Sessions page, "Log out"). False
/// when it was not theirs or had already ended.
pub async fn end_session(
    db: &impl ConnectionTrait,
    user_id: i64,
    session_id: &str,
) -> Result<bool, DbErr> {
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::Id.eq(session_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Ends every session of a member but `keep` (the one asking).
pub async fn end_other_sessions(
    db: &impl ConnectionTrait,
    user_id: i64,
    keep: &str,
) -> Result<u64, DbErr> {
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::Id.ne(keep))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Removes sessions that have expired (for `purge`); with `dry_run` only
/// counts them.
pub async fn end_expired(
    db: &impl ConnectionTrait,
    now: chrono::DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    if dry_run {
        return sessions::Entity::find()
            .filter(sessions::Column::ExpiresAt.lte(now))
            .count(db)
            .await;
    }
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// A member's live sessions, most recently used first.
pub async fn of_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<sessions::Model>, DbErr> {
    use sea_orm::QueryOrder;
    sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .order_by_desc(sessions::Column::LastSeenAt)
        .order_by_desc(sessions::Column::StartedAt)
        .all(db)
        .await
}

/// The id of the session asking (loaded with it; `None` for a session
/// whose row was made by this very request).
pub fn current_id(session: &actix_session::Session) -> Option<String> {
    loaded_row(session, LOADED_SESSION_ID_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_left_for_the_new_row_go_in_its_command() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}/sessions.db?mode=rwc", dir.path().display());
        let db = sea_orm::Database::connect(url).await.expect("connects");
        crate::db::migrate(&db).await.expect("migrates");
        let backend = db.get_database_backend();
        let sql = |sql: &str| Statement::from_string(backend, sql);
        db.execute_raw(sql("CREATE TABLE marks (n INTEGER)"))
            .await
            .expect("a table");
        let marks = async || {
            let row = db
                .query_one_raw(sql("SELECT COUNT(*) AS n FROM marks"))
                .await
                .expect("counts")
                .expect("a row");
            row.try_get::<i64>("", "n").expect("a count")
        };
        let lane = Arc::new(Lane::default());
        let store = DbSessionStore::new(
            db.clone(),
            lane.clone(),
            "visitor:session",
            crate::secrets::Keys::derive(&"k".repeat(32)).session_key(),
            SessionCache::disabled(),
        );
        let mark = || [sql("INSERT INTO marks VALUES (1)")];

        // Outside the middleware's scope: at once.
        write_with_new_row(&db, &lane, mark())
            .await
            .expect("writes");
        assert_eq!(marks().await, 1);
        // Inside: held until the new row is saved, then sent with it.
        let ((), left) = deferring_writes(async {
            write_with_new_row(&db, &lane, mark())
                .await
                .expect("defers");
            assert_eq!(marks().await, 1);
            let ttl = Duration::hours(1);
            store.insert_row(&State::new(), &ttl).await.expect("saves");
            assert_eq!(marks().await, 2);
        })
        .await;
        assert!(left.is_empty());
        // No row saved: given back, for the middleware to run.
        let ((), left) = deferring_writes(async {
            write_with_new_row(&db, &lane, mark())
                .await
                .expect("defers");
        })
        .await;
        assert_eq!(left.len(), 1);
        assert_eq!(marks().await, 2);
    }

    #[test]
    fn addresses_are_shortened_to_their_network() {
        assert_eq!(approximate_address("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(
            approximate_address("2001:db8:85a3:8d3:1319:8a2e:370:7348"),
            "2001:db8:85a3::/48"
        );
        assert_eq!(approximate_address("::ffff:10.1.2.3"), "10.1.2.0/24");
        assert_eq!(approximate_address("nonsense"), "");
    }

    #[test]
    fn loaded_rows_keep_only_their_values_and_read_back_whole() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T16:34:52.989251333+00:00")
            .expect("a date")
            .to_utc();
        let visitor = visitors::Model {
            id: "5822784f-84a7-4100-bce5-db560f85167d".to_owned(),
            site_id: 1,
            token_hash: String::new(),
            scope: "demo".to_owned(),
            first_name: "Gin\"ger".to_owned(),
            last_name: "Rogers, [née] {McMath}".to_owned(),
            email: "ginger@example.org".to_owned(),
            context: Some(serde_json::json!({"for": ["fred", 2]})),
            created_at: at,
            expires_at: at,
            is_active: false,
            session_expiry_secs: 3600,
            created_by: Some(7),
            ended_reason: Some(visitors::EndedReason::Withdrawn),
            ended_at: Some(at),
        };
        let loaded = loaded_form(&visitor).expect("serialises");
        assert!(loaded.starts_with("[\"5822784f-"), "{loaded}");
        assert!(!loaded.contains("first_name"), "{loaded}");
        assert_eq!(
            serde_json::from_str::<visitors::Model>(&loaded).ok(),
            Some(visitor)
        );
        let user = users::Model {
            id: 3,
            site_id: 1,
            username: "fred".to_owned(),
            email: "fred@example.org".to_owned(),
            first_name: String::new(),
            last_name: String::new(),
            phone: String::new(),
            password_hash: Some(String::new()),
            is_staff: true,
            is_active: true,
            created_at: at,
            last_login_at: None,
            deleted_at: None,
        };
        let loaded = loaded_form(&user).expect("serialises");
        assert_eq!(
            serde_json::from_str::<users::Model>(&loaded).ok(),
            Some(user)
        );
    }

    #[test]
    fn the_identity_user_id_is_read_from_its_json_encoding() {
        let mut state = State::new();
        assert_eq!(user_id_of(&state), None);
        state.insert(IDENTITY_KEY.into(), "\"42\"".into());
        assert_eq!(user_id_of(&state), Some(42));
    }

    #[test]
    fn session_keys_are_long_and_distinct() {
        let a = new_session_key();
        let b = new_session_key();
        assert_eq!(a.as_ref().len(), 64);
        assert_ne!(a, b);
    }
}
