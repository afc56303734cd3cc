//! Server-side sessions kept in the `sessions` table (actix-session's
//! `SessionStore`), so they survive restarts and are shared by every instance.
//! Rows are keyed by the SHA-256 of the cookie's session key: the table alone
//! cannot be replayed as cookies.
//!
//! Loading a session also brings, in the same query, the member and visitor
//! rows it points at (`user_id`, `visitor_id` mirror the state): they are
//! handed to the auth and visitor middlewares under reserved keys that are
//! never written back. One query per request instead of three, and the rows
//! are still read fresh on every request.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use chrono::Utc;
use rand::RngExt;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    ExprTrait, FromQueryResult, IdenStatic, Iterable, QueryFilter,
};

use crate::entities::{sessions, users, visitors};
use crate::secrets::{os_rng, sha256_hex};

/// Session key under which actix-identity keeps the logged-in user's id.
const IDENTITY_KEY: &str = "actix_identity.user_id";
/// Reserved keys: the rows loaded with the session, as JSON. Never saved.
pub const LOADED_USER_KEY: &str = "gatehouse.loaded-user";
pub const LOADED_VISITOR_KEY: &str = "gatehouse.loaded-visitor";

#[derive(Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
    /// The session key holding the visitor's id (`visitors.session_key`).
    visitor_key: String,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection, visitor_key: impl Into<String>) -> Self {
        Self {
            db,
            visitor_key: visitor_key.into(),
        }
    }

    fn visitor_id_of(&self, state: &State) -> Option<String> {
        serde_json::from_str(state.get(&self.visitor_key)?).ok()
    }

    /// The state as stored: without the rows loaded alongside it.
    fn serialise(state: &State) -> serde_json::Result<String> {
        let mut kept = state.clone();
        kept.remove(LOADED_USER_KEY);
        kept.remove(LOADED_VISITOR_KEY);
        serde_json::to_string(&kept)
    }
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

fn new_session_key() -> SessionKey {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = os_rng();
    let key: String = (0..64)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    SessionKey::try_from(key).expect("64 characters is a valid session key")
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let other = |err: DbErr| LoadError::Other(err.into());
        let mut select = Query::select();
        select
            .column((sessions::Entity, sessions::Column::Data))
            .column((sessions::Entity, sessions::Column::ExpiresAt))
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
            .and_where(Expr::col((sessions::Entity, sessions::Column::Id)).eq(row_id(session_key)));
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
        let Some(row) = self.db.query_one(&select).await.map_err(other)? else {
            return Ok(None);
        };
        let expires_at: chrono::DateTime<Utc> = row.try_get("", "expires_at").map_err(other)?;
        if expires_at <= Utc::now() {
            return Ok(None);
        }
        let data: String = row.try_get("", "data").map_err(other)?;
        let mut state: State =
            serde_json::from_str(&data).map_err(|err| LoadError::Deserialization(err.into()))?;
        let loaded = |result: Result<Option<String>, DbErr>| result.map_err(other);
        if let Some(user) = loaded(
            users::Model::from_query_result_optional(&row, "u_")
                .map(|user| user.and_then(|user| serde_json::to_string(&user).ok())),
        )? {
            state.insert(LOADED_USER_KEY.to_owned(), user);
        }
        if let Some(visitor) = loaded(
            visitors::Model::from_query_result_optional(&row, "v_")
                .map(|visitor| visitor.and_then(|visitor| serde_json::to_string(&visitor).ok())),
        )? {
            state.insert(LOADED_VISITOR_KEY.to_owned(), visitor);
        }
        Ok(Some(state))
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let data =
            serde_json::to_string(&state).map_err(|err| SaveError::Serialization(err.into()))?;
        let key = new_session_key();
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(row_id(&key)),
            user_id: Set(user_id_of(&state)),
            visitor_id: Set(self.visitor_id_of(&state)),
            data: Set(data),
            expires_at: Set(expires_at(ttl)),
        })
        .exec(&self.db)
        .await
        .map_err(|err| SaveError::Other(err.into()))?;
        Ok(key)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
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
            .col_expr(sessions::Column::ExpiresAt, expires_at(ttl).into())
            .filter(sessions::Column::Id.eq(row_id(&session_key)))
            .exec(&self.db)
            .await
            .map_err(|err| UpdateError::Other(err.into()))?;
        if result.rows_affected == 1 {
            return Ok(session_key);
        }
        self.save(State::new(), ttl).await.map_err(|err| match err {
            SaveError::Serialization(err) => UpdateError::Serialization(err),
            SaveError::Other(err) => UpdateError::Other(err),
        })
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::ExpiresAt, expires_at(ttl).into())
            .filter(sessions::Column::Id.eq(row_id(session_key)))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        sessions::Entity::delete_by_id(row_id(session_key))
            .exec(&self.db)
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
