//! CSRF protection for every unsafe request (POST, PUT, PATCH, DELETE), in
//! one middleware so no route can forget it. A signed double-submit token:
//! the `gatehouse_csrf` cookie holds `nonce.mac`, every form carries the same
//! value in a hidden `csrf_token` field (or an `X-CSRF-Token` header), and
//! they must match. The MAC means a cookie planted by someone else is
//! refused; no session is needed, so anonymous pages write nothing.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use rand::RngExt;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{AppError, respond_with};
use crate::secrets::{Keys, os_rng};

/// The current request's CSRF token, for templates.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

pub const FORM_FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
pub const COOKIE: &str = "gatehouse_csrf";

fn new_token(keys: &Keys) -> String {
    let nonce: [u8; 18] = os_rng().random();
    let nonce = hex::encode(nonce);
    let mac = hex::encode(keys.csrf_mac(nonce.as_bytes()));
    format!("{nonce}.{mac}")
}

fn is_signed(keys: &Keys, token: &str) -> bool {
    let Some((nonce, mac)) = token.split_once('.') else {
        return false;
    };
    let Ok(mac) = hex::decode(mac) else {
        return false;
    };
    keys.csrf_mac(nonce.as_bytes()).ct_eq(&mac).into()
}

fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The token in a urlencoded form body, if the request has one.
async fn token_from_body(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    let body = crate::input::buffer_form_body(req).await?;
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
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .expect("application state is registered");
    let existing = req
        .cookie(COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| is_signed(&state.keys, token));
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(|| new_token(&state.keys));
    req.extensions_mut().insert(CsrfToken(token.clone()));

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
        let valid = !fresh && submitted.is_some_and(|submitted| tokens_match(&submitted, &token));
        if !valid {
            return Ok(respond_with(req, AppError::Csrf));
        }
    }

    let mut res = next.call(req).await?.map_into_left_body();
    // Only pages carry forms; static files and health checks stay cookie-free.
    let is_page = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if fresh && is_page {
        let cookie = Cookie::build(COOKIE, token)
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

    #[test]
    fn tokens_are_signed_and_tampering_is_detected() {
        let keys = Keys::derive(&"k".repeat(40));
        let token = new_token(&keys);
        assert!(is_signed(&keys, &token));
        let other = Keys::derive(&"x".repeat(40));
        assert!(!is_signed(&other, &token));
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('a') { "b" } else { "a" });
        assert!(!is_signed(&keys, &tampered));
        assert!(!is_signed(&keys, "no-dot"));
        assert!(!is_signed(&keys, "abc.zz"));
    }

    #[test]
    fn matching_is_exact() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "abcd"));
    }
}
