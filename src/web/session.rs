//! The session as the application uses it: one method pair per key, and the
//! key names in one place. The key strings are those sessions already stored
//! in the database hold, so changing one logs people out or loses what they
//! were doing. The session store's own keys (identity, loaded rows, the
//! invite id it reads) stay in `sessions`.
//!
//! Reading a key that is absent or does not deserialise gives `None`.
//! Removing marks the session changed (a write for a stored session), so the
//! `take_` methods that only remove what is there say so.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt, SessionInsertError, SessionStatus};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::web::page::Flash;
use crate::web::sessions::{CLIENT_SESSION_KEY, ClientInfo, INVITE_SESSION_KEY};

/// Messages queued for the next page (`page::flash`).
const FLASH_KEY: &str = "flash";
/// The session's CSRF secret (hex).
const CSRF_SECRET_KEY: &str = "csrf.secret";
/// When a session started with an invitation code ends (unix seconds;
/// `null`: when its invite is revoked).
const CODE_ENDS_AT_KEY: &str = "auth.code_ends_at";
/// The random id that tells one visitor session from another in the logs
/// (the cookie's session key is not visible to us).
const VISIT_ID_KEY: &str = "visitor:visit-id";
/// The moment an anonymous visitor session ends (unix seconds).
const VISIT_ENDS_AT_KEY: &str = "visitor:ends-at";
/// An anonymous visitor's cookie lifetime (seconds; 0: until the browser
/// closes).
const VISIT_COOKIE_SECONDS_KEY: &str = "visitor:cookie-seconds";
/// The visitor whose visit this browser ended (its last step done), so a
/// page of the flow opened again can say why the link stopped working.
const ENDED_VISIT_KEY: &str = "visitor:ended";
/// A new invitation code on its way to the page that shows it once (sealed).
const SHOWN_CODE_KEY: &str = "invites.shown";
/// A new visitor link (sealed), waiting for the page that shows it once.
const SHOWN_VISITOR_LINK_KEY: &str = "visitors.shown";
/// The captcha challenge: the answer and a nonce.
const CAPTCHA_CHALLENGE_KEY: &str = "captcha";
/// A code from a login link, on its way to the form.
const LOGIN_LINK_CODE_KEY: &str = "login.link_code";
/// The id of the password reset whose link this browser opened (never the
/// token: sessions are stored in the database).
const PASSWORD_RESET_ID_KEY: &str = "password_reset_id";

/// The request's session, read and written through typed methods.
pub struct TypedSession(Session);

impl TypedSession {
    /// The session of a request (in a handler or a middleware).
    pub fn of(req: &impl SessionExt) -> Self {
        Self(req.get_session())
    }

    pub fn renew(&self) {
        self.0.renew();
    }

    pub fn clear(&self) {
        self.0.clear();
    }

    pub fn purge(&self) {
        self.0.purge();
    }

    pub fn status(&self) -> SessionStatus {
        self.0.status()
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.get::<T>(key).ok().flatten()
    }

    /// Whether `key` holds anything (of any type).
    fn holds(&self, key: &str) -> bool {
        self.get::<serde_json::Value>(key).is_some()
    }

    /// Removes `key` only when it holds something, so that an untouched
    /// session is not marked changed.
    fn remove_if_held(&self, key: &str) {
        if self.holds(key) {
            self.0.remove(key);
        }
    }

    /// The queued messages (none when unreadable).
    pub fn flashes(&self) -> Vec<Flash> {
        self.get(FLASH_KEY).unwrap_or_default()
    }

    pub fn set_flashes(&self, flashes: Vec<Flash>) -> Result<(), SessionInsertError> {
        self.0.insert(FLASH_KEY, flashes)
    }

    /// Takes the queued messages out; an unreadable value is dropped. The
    /// session is only touched when there is something: every anonymous
    /// page view would write a row otherwise.
    pub fn take_flashes(&self) -> Vec<Flash> {
        match self.0.get::<Vec<Flash>>(FLASH_KEY) {
            Ok(Some(flashes)) => {
                self.0.remove(FLASH_KEY);
                flashes
            }
            Ok(None) => Vec::new(),
            Err(_) => {
                self.0.remove(FLASH_KEY);
                Vec::new()
            }
        }
    }

    pub fn csrf_secret(&self) -> Option<String> {
        self.get(CSRF_SECRET_KEY)
    }

    pub fn set_csrf_secret(&self, secret: &str) -> Result<(), SessionInsertError> {
        self.0.insert(CSRF_SECRET_KEY, secret)
    }

    /// Removes the CSRF secret if there is one.
    pub fn forget_csrf_secret(&self) {
        if self.csrf_secret().is_some() {
            self.0.remove(CSRF_SECRET_KEY);
        }
    }

    /// The invite a session started with a code was started with.
    pub fn code_invite_id(&self) -> Option<i64> {
        self.get(INVITE_SESSION_KEY)
    }

    /// When a code session ends, as stored: `Some(None)` when it has no end
    /// time, `None` when the key is missing.
    pub fn code_ends_at(&self) -> Option<Option<i64>> {
        self.get(CODE_ENDS_AT_KEY)
    }

    pub fn set_code(&self, invite_id: i64, ends_at: Option<i64>) -> Result<(), SessionInsertError> {
        self.0
            .insert(INVITE_SESSION_KEY, invite_id)
            .and_then(|()| self.0.insert(CODE_ENDS_AT_KEY, ends_at))
    }

    /// Where and when this member logged in (for their Sessions page).
    pub fn set_client(&self, client: &ClientInfo) -> Result<(), SessionInsertError> {
        self.0.insert(CLIENT_SESSION_KEY, client)
    }

    pub fn forget_code(&self) {
        self.0.remove(INVITE_SESSION_KEY);
        self.0.remove(CODE_ENDS_AT_KEY);
    }

    /// The visitor's id, under the configured key (`visitors.session_key`).
    pub fn visitor_id(&self, session_key: &str) -> Option<String> {
        self.get(session_key)
    }

    /// Whether the configured visitor key holds anything.
    pub fn has_visitor(&self, session_key: &str) -> bool {
        self.holds(session_key)
    }

    pub fn set_visitor_id(
        &self,
        session_key: &str,
        visitor_id: &str,
    ) -> Result<(), SessionInsertError> {
        self.remove_if_held(ENDED_VISIT_KEY);
        self.0.insert(session_key, visitor_id)
    }

    /// The visitor whose visit `end_visit` ended here, if any.
    pub fn ended_visitor_id(&self) -> Option<String> {
        self.get(ENDED_VISIT_KEY)
    }

    pub fn visit_id(&self) -> Option<String> {
        self.get(VISIT_ID_KEY)
    }

    pub fn set_visit_id(&self, visit_id: String) -> Result<(), SessionInsertError> {
        self.0.insert(VISIT_ID_KEY, visit_id)
    }

    pub fn visit_ends_at(&self) -> Option<i64> {
        self.get(VISIT_ENDS_AT_KEY)
    }

    pub fn set_visit_ends_at(&self, ends_at: i64) -> Result<(), SessionInsertError> {
        self.0.insert(VISIT_ENDS_AT_KEY, ends_at)
    }

    pub fn visit_cookie_seconds(&self) -> Option<i64> {
        self.get(VISIT_COOKIE_SECONDS_KEY)
    }

    pub fn set_visit_cookie_seconds(&self, seconds: i64) -> Result<(), SessionInsertError> {
        self.0.insert(VISIT_COOKIE_SECONDS_KEY, seconds)
    }

    /// Drops an anonymous visit's lifetime (before a visitor is stashed).
    pub fn forget_visit_lifetime(&self) {
        self.0.remove(VISIT_ENDS_AT_KEY);
        self.0.remove(VISIT_COOKIE_SECONDS_KEY);
    }

    /// Ends the visit: the visitor, the visit id and the end time go; the
    /// visitor's id is kept as the one whose visit ended.
    pub fn end_visit(&self, session_key: &str) {
        if let Some(visitor_id) = self.get::<String>(session_key)
            && let Err(err) = self.0.insert(ENDED_VISIT_KEY, visitor_id)
        {
            log::warn!("Could not note the ended visit in the session: {err}");
        }
        self.0.remove(session_key);
        self.0.remove(VISIT_ID_KEY);
        self.0.remove(VISIT_ENDS_AT_KEY);
    }

    /// Forgets a visitor that is no longer valid, touching only keys that
    /// hold something.
    pub fn forget_visit(&self, session_key: &str) {
        for key in [
            session_key,
            VISIT_ID_KEY,
            VISIT_ENDS_AT_KEY,
            VISIT_COOKIE_SECONDS_KEY,
        ] {
            self.remove_if_held(key);
        }
    }

    pub fn set_shown_code(&self, sealed_hex: String) -> Result<(), SessionInsertError> {
        self.0.insert(SHOWN_CODE_KEY, sealed_hex)
    }

    /// Takes the sealed code out (the session is touched only if it is there).
    pub fn take_shown_code(&self) -> Option<String> {
        let sealed = self.get::<String>(SHOWN_CODE_KEY)?;
        self.0.remove(SHOWN_CODE_KEY);
        Some(sealed)
    }

    pub fn set_shown_visitor_link(&self, sealed_hex: String) -> Result<(), SessionInsertError> {
        self.0.insert(SHOWN_VISITOR_LINK_KEY, sealed_hex)
    }

    /// Takes the sealed visitor link out (touching the session only if held).
    pub fn take_shown_visitor_link(&self) -> Option<String> {
        let sealed = self.get::<String>(SHOWN_VISITOR_LINK_KEY)?;
        self.0.remove(SHOWN_VISITOR_LINK_KEY);
        Some(sealed)
    }

    /// Stores a captcha challenge (its type belongs to `accounts::captcha`),
    /// replacing any earlier one.
    pub fn set_captcha_challenge(
        &self,
        challenge: impl Serialize,
    ) -> Result<(), SessionInsertError> {
        self.0.insert(CAPTCHA_CHALLENGE_KEY, challenge)
    }

    /// Takes the captcha challenge out, readable or not.
    pub fn take_captcha_challenge<T: DeserializeOwned>(&self) -> Option<T> {
        self.0
            .remove_as::<T>(CAPTCHA_CHALLENGE_KEY)
            .and_then(Result::ok)
    }

    pub fn set_login_link_code(&self, code: String) -> Result<(), SessionInsertError> {
        self.0.insert(LOGIN_LINK_CODE_KEY, code)
    }

    /// Takes the login link's code out, if any.
    pub fn take_login_link_code(&self) -> Option<String> {
        self.0
            .remove_as::<String>(LOGIN_LINK_CODE_KEY)
            .and_then(Result::ok)
    }

    pub fn password_reset_id(&self) -> Option<i64> {
        self.get(PASSWORD_RESET_ID_KEY)
    }

    pub fn set_password_reset_id(&self, reset_id: i64) -> Result<(), SessionInsertError> {
        self.0.insert(PASSWORD_RESET_ID_KEY, reset_id)
    }

    pub fn forget_password_reset(&self) {
        self.0.remove(PASSWORD_RESET_ID_KEY);
    }
}

impl From<Session> for TypedSession {
    fn from(session: Session) -> Self {
        Self(session)
    }
}

impl FromRequest for TypedSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}
