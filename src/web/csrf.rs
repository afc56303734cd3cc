//! CSRF protection for every unsafe request (POST, PUT, PATCH, DELETE), in
//! one middleware so no route can forget it. A signed double-submit token
//! bound to the session: the CSRF cookie holds `nonce.mac`, every form
//! carries the same value in a hidden `csrf_token` field (or an
//! `X-CSRF-Token` header), the two must match, and the MAC must verify for
//! this session.
//!
//! The MAC covers the nonce and the session's *binding*: a random secret kept
//! in the state of every member's or visitor's session, or a fixed marker for
//! anonymous browsers (they have no server-side state to bind to, and get
//! none just for this). So a cookie/token pair issued to another browser, and
//! planted in a member's or visitor's browser (from a sibling subdomain, over
//! plain http), is refused. The secret is replaced whenever the session id is
//! renewed (log in, visitor entry, password change) and goes with the session
//! on logout; when the binding changes during a request the response carries
//! a new cookie. Requests that renew or end a session answer with redirects,
//! so the next page's forms carry the new token.
//!
//! On https sites the cookie is `__Host-gatehouse_csrf`: browsers take it
//! only from this host, over https, for the whole site.
//!
//! Runs inside the session and identity middlewares, whose state it reads.

use actix_identity::IdentityExt;
use actix_session::SessionStatus;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use std::sync::OnceLock;

use rand::RngExt;
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::secrets::{Keys, nonce_rng, os_rng};
use crate::settings::Settings;
use crate::web::error_pages::respond_with;
use crate::web::session::TypedSession;

/// The current request's CSRF token: the cookie's when it is valid, or a
/// new one made when a page with a form first asks (`token_for_page`), which
/// the response then sets as the cookie. Pages without forms make none.
pub struct CsrfToken {
    existing: Option<String>,
    binding: Binding,
    keys: Keys,
    made: OnceLock<String>,
}

impl CsrfToken {
    fn get(&self) -> &str {
        match &self.existing {
            Some(token) => token,
            None => self
                .made
                .get_or_init(|| new_token(&self.keys, &self.binding)),
        }
    }
}

/// The token a form on this page must carry (made now if need be).
pub fn token_for_page(req: &HttpRequest) -> String {
    req.extensions()
        .get::<CsrfToken>()
        .map(|token| token.get().to_owned())
        .unwrap_or_default()
}

pub const FORM_FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
/// The cookie's name on plain http sites.
pub const COOKIE: &str = "gatehouse_csrf";
/// The cookie's name on https sites.
pub const HOST_COOKIE: &str = "__Host-gatehouse_csrf";

/// Bytes of randomness in a token's nonce, and its length in hex.
const NONCE_BYTES: usize = 18;
const NONCE_HEX_LEN: usize = NONCE_BYTES * 2;

/// The CSRF cookie's name for these settings.
pub fn cookie_name(settings: &Settings) -> &'static str {
    if settings.is_https() {
        HOST_COOKIE
    } else {
        COOKIE
    }
}

/// What a token is bound to.
#[derive(Clone, PartialEq, Eq)]
enum Binding {
    /// A browser with no member or visitor session.
    Anonymous,
    /// The secret in a member's or visitor's session.
    Session(String),
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Session(_) => f.write_str("Session([redacted])"),
        }
    }
}

impl Binding {
    /// The binding recorded in this session's state.
    fn of(session: &TypedSession) -> Self {
        match session.csrf_secret() {
            Some(secret) if !secret.is_empty() => Self::Session(secret),
            _ => Self::Anonymous,
        }
    }

    /// Gives the session a new secret and returns it as the binding.
    fn renew_in(session: &TypedSession) -> Self {
        let secret = hex::encode(os_rng().random::<[u8; 32]>());
        session
            .set_csrf_secret(&secret)
            .expect("a string always serialises");
        Self::Session(secret)
    }

    /// What the MAC covers: the nonce (fixed length, so the message cannot
    /// be read two ways), then what the token is bound to.
    fn mac_input(&self, nonce: &str) -> Vec<u8> {
        let mut message = Vec::with_capacity(NONCE_HEX_LEN + 80);
        message.extend_from_slice(nonce.as_bytes());
        match self {
            Self::Anonymous => message.extend_from_slice(b"|anonymous"),
            Self::Session(secret) => {
                message.extend_from_slice(b"|session:");
                message.extend_from_slice(secret.as_bytes());
            }
        }
        message
    }
}

fn new_token(keys: &Keys, binding: &Binding) -> String {
    let nonce = hex::encode(nonce_rng().random::<[u8; NONCE_BYTES]>());
    let mac = hex::encode(keys.csrf_mac(&binding.mac_input(&nonce)));
    format!("{nonce}.{mac}")
}

/// Whether `token` was issued by this site for this binding.
fn is_valid_for(keys: &Keys, binding: &Binding, token: &str) -> bool {
    let Some((nonce, mac)) = token.split_once('.') else {
        return false;
    };
    if nonce.len() != NONCE_HEX_LEN || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let Ok(mac) = hex::decode(mac) else {
        return false;
    };
    keys.csrf_mac(&binding.mac_input(nonce)).ct_eq(&mac).into()
}

fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether this session belongs to a member or a visitor: the sessions whose
/// state lives on the server and gets a secret to bind tokens to.
fn is_member_or_visitor(req: &HttpRequest, session: &TypedSession, visitor_key: &str) -> bool {
    req.get_identity().is_ok() || session.has_visitor(visitor_key)
}

/// The binding once the handler has run: a session renewed during the request
/// gets a new secret (or loses it, if it no longer belongs to anyone), a
/// purged one is anonymous.
fn binding_after(req: &HttpRequest, visitor_key: &str) -> Binding {
    let session = TypedSession::of(req);
    match session.status() {
        SessionStatus::Purged => Binding::Anonymous,
        SessionStatus::Renewed if is_member_or_visitor(req, &session, visitor_key) => {
            Binding::renew_in(&session)
        }
        SessionStatus::Renewed => {
            session.forget_csrf_secret();
            Binding::Anonymous
        }
        SessionStatus::Changed | SessionStatus::Unchanged => match Binding::of(&session) {
            // Became a member's or visitor's without a new id: bind it anyway.
            Binding::Anonymous if is_member_or_visitor(req, &session, visitor_key) => {
                Binding::renew_in(&session)
            }
            binding => binding,
        },
    }
}

/// The token in a urlencoded form body, if the request has one.
async fn token_from_body(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    let body = crate::web::input::buffer_form_body(req).await?;
    Ok(body.and_then(|body| {
        url::form_urlencoded::parse(&body)
            .find(|(name, _)| name == FORM_FIELD)
            .map(|(_, value)| value.into_owned())
    }))
}

pub async fn protect(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = crate::web::app_state(&req);
    let visitor_key = state.settings.visitors.session_key.as_str();
    let name = cookie_name(&state.settings);
    let session = TypedSession::of(&req);
    let binding = match Binding::of(&session) {
        // A member's or visitor's session from before tokens were bound:
        // bind it now (an unsafe request in this one fails, once).
        Binding::Anonymous if is_member_or_visitor(req.request(), &session, visitor_key) => {
            Binding::renew_in(&session)
        }
        binding => binding,
    };
    let existing = req
        .cookie(name)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| is_valid_for(&state.keys, &binding, token));

    let unsafe_method = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if unsafe_method {
        let from_header = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let submitted = match from_header {
            Some(token) => Ok(Some(token)),
            None => token_from_body(&mut req).await,
        };
        let submitted = match submitted {
            Ok(submitted) => submitted,
            Err(err) => return Ok(respond_with(req, err)),
        };
        let valid = existing.as_deref().is_some_and(|token| {
            submitted.is_some_and(|submitted| tokens_match(&submitted, token))
        });
        if !valid {
            return Ok(respond_with(req, AppError::Csrf));
        }
    }
    req.extensions_mut().insert(CsrfToken {
        existing,
        binding: binding.clone(),
        keys: state.keys.clone(),
        made: OnceLock::new(),
    });

    let mut res = next.call(req).await?.map_into_left_body();
    let after = binding_after(res.request(), visitor_key);
    let cookie_value = if after != binding {
        // Logged in, entered as a visitor, logged out…: the old token is void.
        Some(new_token(&state.keys, &after))
    } else {
        // A token made for a form on this page becomes the cookie.
        res.request()
            .extensions()
            .get::<CsrfToken>()
            .and_then(|token| token.made.get().cloned())
    };
    if let Some(value) = cookie_value {
        // Path=/, no Domain and Secure on https: what `__Host-` requires.
        let cookie = Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .secure(state.settings.is_https())
            .same_site(SameSite::Lax)
            .finish();
        if let Err(err) = res.response_mut().add_cookie(&cookie) {
            log::warn!("Could not set the CSRF cookie: {err}");
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::derive(&"k".repeat(40))
    }

    fn session_binding(secret: &str) -> Binding {
        Binding::Session(secret.to_owned())
    }

    #[test]
    fn tokens_are_signed_and_tampering_is_detected() {
        let keys = keys();
        let binding = Binding::Anonymous;
        let token = new_token(&keys, &binding);
        assert!(is_valid_for(&keys, &binding, &token));
        let other = Keys::derive(&"x".repeat(40));
        assert!(!is_valid_for(&other, &binding, &token));
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('a') { "b" } else { "a" });
        assert!(!is_valid_for(&keys, &binding, &tampered));
        for bad in [
            "",
            ".",
            "no-dot",
            "abc.zz",
            "abc.00",
            &token[..token.len() - 2],
        ] {
            assert!(!is_valid_for(&keys, &binding, bad), "{bad:?}");
        }
    }

    #[test]
    fn a_token_is_valid_only_for_the_binding_it_was_issued_for() {
        let keys = keys();
        let fred = session_binding("aa11");
        let ginger = session_binding("bb22");
        let freds = new_token(&keys, &fred);
        let anonymous = new_token(&keys, &Binding::Anonymous);
        assert!(is_valid_for(&keys, &fred, &freds));
        assert!(!is_valid_for(&keys, &ginger, &freds));
        assert!(!is_valid_for(&keys, &Binding::Anonymous, &freds));
        // A token from before logging in (or another browser's) is void in a session.
        assert!(!is_valid_for(&keys, &fred, &anonymous));
        assert!(is_valid_for(&keys, &Binding::Anonymous, &anonymous));
    }

    #[test]
    fn a_token_from_before_binding_is_refused() {
        // The old format: the MAC over the nonce alone.
        let keys = keys();
        let nonce = "ab".repeat(NONCE_BYTES);
        let old = format!("{nonce}.{}", hex::encode(keys.csrf_mac(nonce.as_bytes())));
        assert!(!is_valid_for(&keys, &Binding::Anonymous, &old));
    }

    #[test]
    fn the_nonce_cannot_shift_into_the_binding() {
        // Moving characters between the nonce and the binding changes the
        // message only if the nonce's length is not checked.
        let keys = keys();
        let binding = session_binding("cafe");
        let token = new_token(&keys, &binding);
        let (nonce, mac) = token.split_once('.').expect("dot");
        let longer = format!("{nonce}0.{mac}");
        assert!(!is_valid_for(&keys, &binding, &longer));
        let shorter = format!("{}.{mac}", &nonce[1..]);
        assert!(!is_valid_for(&keys, &binding, &shorter));
        assert_ne!(
            Binding::Anonymous.mac_input(nonce),
            session_binding("").mac_input(nonce)
        );
    }

    #[test]
    fn matching_is_exact() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "abcd"));
    }

    #[test]
    fn https_sites_name_both_cookies_with_the_host_prefix() {
        let mut settings = Settings::defaults();
        settings.server.base_url = "http://localhost:8080".into();
        assert_eq!(cookie_name(&settings), "gatehouse_csrf");
        assert_eq!(settings.session_cookie_name(), "gatehouse_session");
        settings.server.base_url = "https://club.example.org".into();
        assert_eq!(cookie_name(&settings), "__Host-gatehouse_csrf");
        assert_eq!(settings.session_cookie_name(), "__Host-gatehouse_session");
        // An operator's own prefix is not doubled.
        settings.sessions.cookie_name = "__Host-club".into();
        assert_eq!(settings.session_cookie_name(), "__Host-club");
    }

    #[test]
    fn bindings_never_show_their_secret_in_debug_output() {
        assert!(!format!("{:?}", session_binding("s3cr3t")).contains("s3cr3t"));
    }
}
