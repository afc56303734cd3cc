//! The `Page` extractor: renders templates with what every page needs (the
//! site, who is asking, the CSRF token and one-shot messages), and the small
//! helpers every handler shares (HEAD-answering GET routes, See Other).

use std::future::{Ready, ready};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, dev::Payload, http::StatusCode, web,
};
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::render;
use crate::web::auth::CurrentUser;
use crate::web::csrf;
use crate::web::session::TypedSession;
use crate::web::sites::CurrentSite;
use crate::web::visitor::{CurrentVisitor, InvalidLinkNotice};

/// A one-shot message shown on the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub level: FlashLevel,
    pub text: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashLevel {
    Info,
    Success,
    Warning,
    Error,
}

/// Messages kept for the next page, at most (the oldest go first): a script
/// repeating a failing request must not grow the session.
const MAX_FLASHES: usize = 4;

/// Queues a message for the next page this session renders (once: the same
/// message queued again is not repeated).
pub fn flash(req: &HttpRequest, level: FlashLevel, text: impl Into<String>) {
    let session = TypedSession::of(req);
    let mut flashes = session.flashes();
    let text = text.into();
    flashes.retain(|queued| queued.text != text);
    flashes.push(Flash { level, text });
    let excess = flashes.len().saturating_sub(MAX_FLASHES);
    flashes.drain(..excess);
    if let Err(err) = session.set_flashes(flashes) {
        log::warn!("Could not store a message in the session: {err}");
    }
}

/// The context every page starts from.
pub fn base_context_for(req: &HttpRequest, state: &AppState) -> Context {
    let mut context = Context::new();
    let extensions = req.extensions();
    if let Some(site) = extensions.get::<CurrentSite>() {
        context.insert("site", site.0.as_ref());
    } else {
        context.insert(
            "site",
            &serde_json::json!({ "name": state.settings.server.site_name }),
        );
    }
    context.insert("user", &extensions.get::<CurrentUser>());
    context.insert("visitor", &extensions.get::<CurrentVisitor>());
    // Why a link in this request does not work, in words (`link-state`).
    context.insert(
        "link_notice",
        &extensions.get::<InvalidLinkNotice>().map(|notice| {
            serde_json::json!({
                "kind": notice.kind(),
                "title": notice.title(),
                "sentence": notice.sentence(),
                "level": notice.level(),
            })
        }),
    );
    // Set by the error page when the notice is its whole message.
    context.insert("link_notice_is_page", &false);
    // Filled in by `with_csrf_token` for pages with forms.
    context.insert("csrf_token", "");
    context.insert("current_path", req.path());
    context.insert("flashes", &Vec::<Flash>::new());
    context
}

/// Adds the CSRF token that the page's forms carry.
pub fn with_csrf_token(req: &HttpRequest, context: &mut Context) {
    context.insert("csrf_token", &csrf::token_for_page(req));
}

/// Extractor for handlers that render pages.
pub struct Page {
    req: HttpRequest,
    state: web::Data<AppState>,
}

impl FromRequest for Page {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.app_data::<web::Data<AppState>>()
                .cloned()
                .map(|state| Page {
                    req: req.clone(),
                    state,
                })
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state missing"))),
        )
    }
}

impl Page {
    /// Renders `template` with the base context plus `context`, status 200.
    pub fn request(&self) -> &HttpRequest {
        &self.req
    }

    pub fn render(&self, template: &str, context: Context) -> AppResult<HttpResponse> {
        self.render_with_status(StatusCode::OK, template, context)
    }

    pub fn render_with_status(
        &self,
        status: StatusCode,
        template: &str,
        context: Context,
    ) -> AppResult<HttpResponse> {
        let mut full = base_context_for(&self.req, &self.state);
        // Members' pages all have the logout form.
        if render::has_form(template) || self.req.extensions().get::<CurrentUser>().is_some() {
            with_csrf_token(&self.req, &mut full);
        }
        full.insert("flashes", &self.take_flashes());
        full.extend(context);
        let html = self.state.templates.render(template, &full)?;
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(html))
    }

    /// A page with a form and its `errors`: 200, or 422 when the form comes
    /// back with errors (so scripts can tell; the same page for people).
    pub fn render_form(
        &self,
        template: &str,
        mut context: Context,
        errors: &crate::web::forms::FormErrors,
    ) -> AppResult<HttpResponse> {
        context.insert("errors", errors);
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        self.render_with_status(status, template, context)
    }

    fn take_flashes(&self) -> Vec<Flash> {
        // A HEAD shows nothing, so it must not use up the messages.
        if self.req.method() == actix_web::http::Method::HEAD {
            return Vec::new();
        }
        TypedSession::of(&self.req).take_flashes()
    }
}

/// A route for GET that also answers HEAD (same headers, no body), as
/// monitors and link checkers expect.
pub fn get() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// `303 See Other` to a local path: the answer to every successful POST.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .finish()
}
