//! Server-side sessions kept in the `sessions` table (actix-session's
//! `SessionStore`), so they survive restarts and are shared by every instance.
//! Rows are keyed by the SHA-256 of the cookie's session key: the table alone
//! cannot be replayed as cookies.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use chrono::Utc;
use rand::RngExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::entities::sessions;
use crate::secrets::{os_rng, sha256_hex};

/// Session key under which actix-identity keeps the logged-in user's id.
const IDENTITY_KEY: &str = "actix_identity.user_id";

#[derive(Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
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
        let row = sessions::Entity::find_by_id(row_id(session_key))
            .one(&self.db)
            .await
            .map_err(|err| LoadError::Other(err.into()))?;
        let Some(row) = row else { return Ok(None) };
        if row.expires_at <= Utc::now() {
            return Ok(None);
        }
        serde_json::from_str(&row.data)
            .map(Some)
            .map_err(|err| LoadError::Deserialization(err.into()))
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let data =
            serde_json::to_string(&state).map_err(|err| SaveError::Serialization(err.into()))?;
        let key = new_session_key();
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(row_id(&key)),
            user_id: Set(user_id_of(&state)),
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
        let data =
            serde_json::to_string(&state).map_err(|err| UpdateError::Serialization(err.into()))?;
        // Only existing rows are updated. A row that vanished while this
        // request ran was ended (logout elsewhere, password change, expiry):
        // writing its state back would resurrect the login, so the browser
        // gets a fresh, empty session instead.
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::Data, data.into())
            .col_expr(sessions::Column::UserId, user_id_of(&state).into())
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
