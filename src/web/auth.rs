//! Who is asking: loads the logged-in member once per request (after the
//! session and identity middlewares) and offers extractors for handlers:
//! `MaybeUser`, `Member` (anonymous → login page) and `Staff` (others → 403).
//! A session started with an invitation code carries what decides its end:
//! the invite's id and the end time set at login (`expiry_days` after the
//! code's first use); revoking the invite marks its sessions (see
//! `sessions::end_code_sessions`). So no request looks at invites, and
//! password sessions have nothing of the kind.

use std::future::{Ready, ready};

use actix_identity::{Identity, IdentityExt};
use actix_session::SessionExt;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::Serialize;

use crate::entities::users;
use crate::error::AppError;
use crate::web::error_pages::respond_with;
use crate::web::page::{FlashLevel, flash};
use crate::web::session::TypedSession;
use crate::web::sessions;
use crate::web::sites::CurrentSite;

/// A session started with an invitation code: what decides its end.
#[derive(Debug, Clone, Copy)]
pub struct CodeSession {
    pub invite_id: i64,
    /// `None` for a one-shot code: the session lasts until revoked.
    pub ends_at: Option<DateTime<Utc>>,
}

/// Why a session started with a code must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeSessionEnd {
    Revoked,
    Expired,
}

/// The logged-in member, as templates and handlers see them.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentUser {
    pub id: i64,
    pub site_id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub display_name: String,
    pub is_staff: bool,
    pub has_password: bool,
    /// Set when this session was started with an invitation code.
    pub invite_id: Option<i64>,
}

impl CurrentUser {
    pub fn from_model(user: &users::Model, invite_id: Option<i64>) -> Self {
        let full = format!("{} {}", user.first_name, user.last_name);
        let full = full.trim();
        Self {
            id: user.id,
            site_id: user.site_id,
            username: user.username.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            display_name: if full.is_empty() {
                user.username.clone()
            } else {
                full.to_owned()
            },
            is_staff: user.is_staff,
            has_password: user.password_hash.is_some(),
            invite_id,
        }
    }
}

/// Middleware: puts `CurrentUser` into the request when the session belongs
/// to an active member of this site; ends the session otherwise.
pub async fn load_user(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Ok(identity) = req.get_identity() {
        let state = crate::web::app_state(&req);
        let site_id = req.extensions().get::<CurrentSite>().map(|site| site.0.id);
        let user_id = identity.id().ok().and_then(|id| id.parse::<i64>().ok());
        // Usually loaded with the session in the same query; queried otherwise.
        let loaded: Option<users::Model> =
            sessions::loaded_row(&req.get_session(), sessions::LOADED_USER_KEY);
        let user = match (user_id, loaded) {
            (Some(user_id), Some(user)) if user.id == user_id => Some(user),
            (Some(user_id), _) => match users::Entity::find_by_id(user_id).one(&state.db).await {
                Ok(user) => user,
                Err(err) => return Ok(respond_with(req, err.into())),
            },
            (None, _) => None,
        }
        .filter(|user| user.is_active && Some(user.site_id) == site_id);
        match user {
            Some(user) => {
                let invite_id = TypedSession::of(&req).code_invite_id();
                if invite_id.is_some()
                    && let Some(end) = code_session_end(&req, Utc::now())
                {
                    return Ok(end_code_session(req, end));
                }
                req.extensions_mut()
                    .insert(CurrentUser::from_model(&user, invite_id));
            }
            // Deactivated, deleted, or a session from another site.
            None => identity.logout(),
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Whether a session started with a code must end now: its invite was
/// revoked (the session store reports it), or its end time has passed.
fn code_session_end(req: &ServiceRequest, now: DateTime<Utc>) -> Option<CodeSessionEnd> {
    let revoked =
        sessions::loaded_row::<bool>(&req.get_session(), sessions::LOADED_INVITE_REVOKED_KEY);
    let ends_at = TypedSession::of(req).code_ends_at();
    code_end(revoked == Some(true), ends_at, now)
}

/// `ends_at` as stored: `Some(None)` when the session has no end time; a
/// code session without the key predates end times in sessions, so it ends.
fn code_end(
    revoked: bool,
    ends_at: Option<Option<i64>>,
    now: DateTime<Utc>,
) -> Option<CodeSessionEnd> {
    if revoked {
        return Some(CodeSessionEnd::Revoked);
    }
    match ends_at {
        Some(None) => None,
        Some(Some(ends_at)) if now.timestamp() <= ends_at => None,
        _ => Some(CodeSessionEnd::Expired),
    }
}

/// Logs out a session whose code no longer works and sends the person to
/// the login page with a message. The session is cleared and renewed rather
/// than purged, so the message survives in it.
fn end_code_session<B>(req: ServiceRequest, end: CodeSessionEnd) -> ServiceResponse<EitherBody<B>> {
    let session = TypedSession::of(&req);
    session.clear();
    session.renew();
    let why = match end {
        CodeSessionEnd::Revoked => "has been withdrawn",
        CodeSessionEnd::Expired => "has expired",
    };
    flash(
        req.request(),
        FlashLevel::Warning,
        format!(
            "The invitation code you logged in with {why}, so you have been logged out. If you \
             have set a password, log in with it; otherwise ask the person who invited you for a \
             new code, and set a password once you are in."
        ),
    );
    // Back to this page after logging in, when it can be fetched again.
    let next = if matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) {
        here(req.request())
    } else {
        "/".to_owned()
    };
    log::info!("A session started with an invitation code ended: the code {why}.");
    respond_with(req, AppError::LoginRequired { next })
}

fn current(req: &HttpRequest) -> Option<CurrentUser> {
    req.extensions().get::<CurrentUser>().cloned()
}

/// The path and query of this request, as a `next=` value.
pub fn here(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    }
}

/// Anyone; `Some` when logged in.
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequest for MaybeUser {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(MaybeUser(current(req))))
    }
}

/// A logged-in member; anonymous requests are sent to the login page.
pub struct Member(pub CurrentUser);

impl FromRequest for Member {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            current(req)
                .map(Member)
                .ok_or_else(|| AppError::LoginRequired { next: here(req) }),
        )
    }
}

/// A logged-in staff member; anonymous → login page, members → 403.
pub struct Staff(pub CurrentUser);

impl FromRequest for Staff {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match current(req) {
            Some(user) if user.is_staff => Ok(Staff(user)),
            Some(_) => Err(AppError::Forbidden(
                "This page is for staff only. If you need access, ask a staff member of this site."
                    .into(),
            )),
            None => Err(AppError::LoginRequired { next: here(req) }),
        })
    }
}

/// Starts a logged-in session for `user` (the session id is renewed); with
/// `code`, one that ends with it.
pub fn log_in(req: &HttpRequest, user_id: i64, code: Option<CodeSession>) -> Result<(), AppError> {
    Identity::login(&req.extensions(), user_id.to_string())
        .map_err(|err| AppError::Internal(anyhow::anyhow!("could not start the session: {err}")))?;
    let session = TypedSession::of(req);
    let client = client_info(req);
    session
        .set_client(&client)
        .map_err(|err| AppError::Internal(anyhow::anyhow!("could not store the session: {err}")))?;
    match code {
        Some(code) => {
            let stored = session.set_code(code.invite_id, code.ends_at.map(|at| at.timestamp()));
            stored.map_err(|err| {
                AppError::Internal(anyhow::anyhow!("could not store the session: {err}"))
            })?;
        }
        None => session.forget_code(),
    }
    Ok(())
}

/// Where and when this login happens: the browser and the client's network.
fn client_info(req: &HttpRequest) -> sessions::ClientInfo {
    let trusted = req
        .app_data::<actix_web::web::Data<crate::AppState>>()
        .map(|state| state.settings.server.trusted_proxies.clone())
        .unwrap_or_default();
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    sessions::ClientInfo {
        started_at: Utc::now().timestamp(),
        user_agent: user_agent.chars().take(300).collect(),
        client_ip: sessions::approximate_address(&crate::web::client::client_ip(req, &trusted)),
    }
}

/// A `next=` value is followed only when it is a path on this site.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2000;
    local.then(|| next.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{CodeSessionEnd, code_end, safe_next};

    #[test]
    fn code_sessions_end_on_revocation_or_expiry_but_one_shot_ones_last() {
        let now = chrono::Utc::now();
        let later = now.timestamp() + 60;
        let earlier = now.timestamp() - 60;
        assert_eq!(code_end(false, Some(Some(later)), now), None);
        assert_eq!(
            code_end(false, Some(Some(earlier)), now),
            Some(CodeSessionEnd::Expired)
        );
        assert_eq!(code_end(false, Some(None), now), None, "one-shot: lasts");
        assert_eq!(
            code_end(true, Some(None), now),
            Some(CodeSessionEnd::Revoked)
        );
        assert_eq!(
            code_end(true, Some(Some(later)), now),
            Some(CodeSessionEnd::Revoked)
        );
        assert_eq!(code_end(false, None, now), Some(CodeSessionEnd::Expired));
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/accounts/password")).as_deref(),
            Some("/accounts/password")
        );
        assert_eq!(safe_next(Some("/x?y=1#z")).as_deref(), Some("/x?y=1#z"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\nLocation: x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }
}
