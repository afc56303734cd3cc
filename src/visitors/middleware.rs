//! The two visitor middlewares, in request order:
//!
//! 1. `handle_link`: a `?vid=` token on a GET or HEAD. A valid token answers
//!    a short landing page whose button POSTs it to `/visitors/enter`; the GET
//!    itself writes nothing, because mail scanners and link previewers fetch
//!    links too (OWASP ASVS 5.0 7.6.2). With `visitors.confirm_on_link =
//!    false` a GET stashes the visitor at once, as django-visitors did. A HEAD
//!    never writes. Unknown, inactive or expired tokens let the page render as
//!    for a non-visitor, with a notice; a malformed one gets 400.
//! 2. `restore`: puts the session's visitor into the request, and drops it
//!    when the visitor was deactivated or expired, or an anonymous visitor
//!    session has run its time.
//!
//! `session_cookie_lifetime` sits outside the session middleware and gives an
//! anonymous visitor's session cookie the visitor's lifetime.

use actix_session::SessionExt;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, time::Duration as CookieDuration};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use rand::RngExt;

use super::tokens::{LinkToken, token_keys, without_token};
use super::{CurrentVisitor, Visitor, full_name, is_valid, logs};
use crate::AppState;
use crate::error::AppError;
use crate::secrets::os_rng;
use crate::settings::SessionExpiryMode;
use crate::web::auth::{CurrentUser, safe_next};
use crate::web::error_pages::respond_with;
use crate::web::page::{base_context_for, with_csrf_token};
use crate::web::session::TypedSession;
use crate::web::sessions;
use crate::web::sites::CurrentSite;
use crate::web::visitor::InvalidLinkNotice;

/// How long this session's cookie should last, when a visitor decides it.
#[derive(Debug, Clone, Copy)]
enum CookieLifetime {
    /// Until the browser closes.
    Browser,
    Seconds(i64),
}

/// The token in the query string, if any: the last value of any token key.
fn token_in_query(query: &str, keys: &[&str]) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| keys.contains(&name.as_ref()))
        .map(|(_, value)| value.trim().to_owned())
        .last()
        .filter(|value| !value.is_empty())
}

pub async fn handle_link(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let is_head = req.method() == Method::HEAD;
    if !(req.method() == Method::GET || is_head) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let state = crate::web::app_state(&req);
    let keys = token_keys(&state.settings.visitors.querystring_key);
    let Some(raw) = token_in_query(req.query_string(), &keys) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let Ok(token) = LinkToken::parse(&raw) else {
        let notice = InvalidLinkNotice::Incomplete;
        let sentence = notice.sentence();
        req.extensions_mut().insert(notice);
        return Ok(respond_with(req, AppError::BadRequest(sentence)));
    };
    let visitor = match super::find_by_token(&state.db, &token).await {
        Ok(visitor) => visitor,
        Err(err) => return Ok(respond_with(req, err.into())),
    };
    let site_id = req.extensions().get::<CurrentSite>().map(|site| site.0.id);
    let visitor = visitor.filter(|v| Some(v.site_id) == site_id);
    let notice = InvalidLinkNotice::of(visitor.as_ref(), Utc::now(), state.zone());
    if let Some(notice) = notice {
        req.extensions_mut().insert(notice);
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(visitor) = visitor else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // The path is the client's own: `//evil.example` must not become a
    // redirect (or a landing-page `next`) to another site.
    let target = safe_next(Some(&without_token(req.path(), req.query_string(), &keys)))
        .unwrap_or_else(|| "/".to_owned());
    if is_head || state.settings.visitors.confirm_on_link {
        let response = landing_page(req.request(), &state, &visitor, &token, &target);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let response = match stash(req.request(), &state, &visitor) {
        Ok(()) => {
            record_use(req.request(), &state, &visitor.id, 303).await;
            crate::web::page::see_other(&target)
        }
        Err(err) => return Ok(respond_with(req, err)),
    };
    Ok(req.into_response(response).map_into_right_body())
}

/// "Hello Ginger — continue to …": the button POSTs the token to
/// `/visitors/enter`. Nothing is written; the page is neither cached nor
/// allowed to leak the token through a Referer.
fn landing_page(
    req: &HttpRequest,
    state: &AppState,
    visitor: &Visitor,
    token: &LinkToken,
    target: &str,
) -> HttpResponse {
    let mut context = base_context_for(req, state);
    with_csrf_token(req, &mut context);
    context.insert("visitor_name", &full_name(visitor));
    context.insert("visitor_first_name", &visitor.first_name);
    context.insert("target", target);
    context.insert("token", &token.as_string());
    context.insert(
        "expires_at",
        &CurrentVisitor::of(visitor, state.zone()).valid_until,
    );
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match state.templates.render("visitors/landing.html", &context) {
        Ok(html) => builder.content_type("text/html; charset=utf-8").body(html),
        Err(err) => {
            log::error!("Could not render the visitor landing page: {err}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Makes `visitor` this session's visitor: a fresh session id, a new visit
/// id for the logs, and for anonymous sessions the visitor's lifetime.
pub fn stash(req: &HttpRequest, state: &AppState, visitor: &Visitor) -> Result<(), AppError> {
    let session = TypedSession::of(req);
    let failed = |err: actix_session::SessionInsertError| {
        AppError::Internal(anyhow::anyhow!(
            "could not store the visitor in the session: {err}"
        ))
    };
    let visit_id = hex::encode(os_rng().random::<[u8; 16]>());
    session
        .set_visitor_id(&state.settings.visitors.session_key, &visitor.id)
        .map_err(failed)?;
    session.set_visit_id(visit_id).map_err(failed)?;
    let anonymous = req.extensions().get::<CurrentUser>().is_none();
    session.forget_visit_lifetime();
    if anonymous {
        let seconds = visitor.session_expiry_secs;
        session.set_visit_cookie_seconds(seconds).map_err(failed)?;
        if seconds > 0 {
            session
                .set_visit_ends_at(Utc::now().timestamp() + seconds)
                .map_err(failed)?;
        }
        req.extensions_mut().insert(lifetime_for(seconds));
    }
    session.renew();
    Ok(())
}

fn lifetime_for(seconds: i64) -> CookieLifetime {
    if seconds > 0 {
        CookieLifetime::Seconds(seconds)
    } else {
        CookieLifetime::Browser
    }
}

/// Logs a use of the link itself (the stash), with the session's visit id.
pub async fn record_use(req: &HttpRequest, state: &AppState, visitor_id: &str, status: u16) {
    let visit_id = TypedSession::of(req).visit_id();
    let row = logs::row_for(
        req,
        &state.settings,
        visitor_id,
        visit_id.as_deref(),
        status,
    );
    state.visit_log.record(row).await;
}

pub async fn restore(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = crate::web::app_state(&req);
    let session = TypedSession::of(&req);
    let session_key = state.settings.visitors.session_key.as_str();
    let Some(visitor_id) = session.visitor_id(session_key) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let now = Utc::now();
    let ends_at = session.visit_ends_at();
    let ended = ends_at.is_some_and(|ends_at| ends_at <= now.timestamp());
    // Usually loaded with the session in the same query; queried otherwise.
    let loaded: Option<Visitor> =
        sessions::loaded_row(&req.get_session(), sessions::LOADED_VISITOR_KEY);
    let visitor = match loaded {
        _ if ended => None,
        Some(visitor) if visitor.id == visitor_id => Some(visitor),
        _ => match super::find(&state.db, &visitor_id).await {
            Ok(visitor) => visitor,
            Err(err) => return Ok(respond_with(req, err.into())),
        },
    };
    let site_id = req.extensions().get::<CurrentSite>().map(|site| site.0.id);
    let visitor = visitor.filter(|v| Some(v.site_id) == site_id);
    // The link was switched off or ran out while this session used it: say so.
    if let Some(notice) = visitor
        .as_ref()
        .and_then(|v| InvalidLinkNotice::of(Some(v), now, state.zone()))
        && req.extensions().get::<InvalidLinkNotice>().is_none()
    {
        req.extensions_mut().insert(notice);
    }
    match visitor.filter(|v| is_valid(v, now)) {
        Some(visitor) => {
            let anonymous_visit = session.visit_cookie_seconds().is_some();
            let ends_at = match state.settings.visitors.session_expiry_mode {
                SessionExpiryMode::Idle => ends_at.map(|at| extend_idle(&session, at, now)),
                SessionExpiryMode::Absolute => ends_at,
            };
            let mut extensions = req.extensions_mut();
            extensions.insert(CurrentVisitor::of(&visitor, state.zone()));
            // A re-issued cookie lasts only what is left of the visit.
            match ends_at {
                Some(ends_at) => {
                    extensions.insert(CookieLifetime::Seconds(ends_at - now.timestamp()));
                }
                None if anonymous_visit => {
                    extensions.insert(CookieLifetime::Browser);
                }
                None => {}
            }
        }
        // A HEAD writes nothing: the session is cleaned up on the next GET.
        None if req.method() == Method::HEAD => {}
        None => session.forget_visit(session_key),
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// With `visitors.session_expiry_mode = "idle"`, an anonymous visit's end
/// moves to its length from now. The session is written at most once per
/// tenth of that length (and once a minute at most), not on every request.
fn extend_idle(session: &TypedSession, ends_at: i64, now: DateTime<Utc>) -> i64 {
    let Some(seconds) = session
        .visit_cookie_seconds()
        .filter(|seconds| *seconds > 0)
    else {
        return ends_at;
    };
    let extended = now.timestamp() + seconds;
    if extended - ends_at < (seconds / 10).clamp(1, 60) {
        return ends_at;
    }
    match session.set_visit_ends_at(extended) {
        Ok(()) => extended,
        Err(err) => {
            log::warn!("Could not extend an idle visitor session: {err}");
            ends_at
        }
    }
}

/// Outside the session middleware: when an anonymous visitor's session
/// cookie is (re)issued, it gets the visitor's lifetime instead of the
/// site's: a browser-session cookie, or the visitor's seconds.
pub async fn session_cookie_lifetime(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = crate::web::app_state(&req);
    let mut res = next.call(req).await?;
    let Some(lifetime) = res.request().extensions().get::<CookieLifetime>().copied() else {
        return Ok(res);
    };
    let name = state.settings.session_cookie_name();
    let headers = res.headers_mut();
    let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).cloned().collect();
    headers.remove(header::SET_COOKIE);
    for value in cookies {
        let rewritten = value
            .to_str()
            .ok()
            .and_then(|text| Cookie::parse(text.to_owned()).ok())
            .filter(|cookie| {
                cookie.name() == name && cookie.max_age() != Some(CookieDuration::ZERO)
            })
            .and_then(|mut cookie| {
                cookie.unset_expires();
                match lifetime {
                    CookieLifetime::Browser => cookie.set_max_age(None),
                    CookieLifetime::Seconds(seconds) => {
                        cookie.set_max_age(CookieDuration::seconds(seconds));
                    }
                }
                header::HeaderValue::from_str(&cookie.to_string()).ok()
            });
        headers.append(header::SET_COOKIE, rewritten.unwrap_or(value));
    }
    Ok(res)
}
