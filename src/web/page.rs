//! The `Page` extractor: renders templates with what every page needs (the
//! site, who is asking, the CSRF token and one-shot messages), and the small
//! helpers every handler shares (HEAD-answering GET routes, See Other).

use std::future::{Ready, ready};
use std::sync::Arc;

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
use crate::web::sites::{CurrentSite, Site};
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
    pub fn request(&self) -> &HttpRequest {
        &self.req
    }

    /// Renders `template` with the base context plus `context`, status 200.
    pub fn render(&self, template: &str, context: Context) -> AppResult<HttpResponse> {
        self.render_with_status(StatusCode::OK, template, context)
    }

    pub fn render_with_status(
        &self,
        status: StatusCode,
        template: &str,
        context: Context,
    ) -> AppResult<HttpResponse> {
        self.render_with_flashes(status, template, context, self.take_flashes())
    }

    fn render_with_flashes(
        &self,
        status: StatusCode,
        template: &str,
        context: Context,
        flashes: Vec<Flash>,
    ) -> AppResult<HttpResponse> {
        let mut full = base_context_for(&self.req, &self.state);
        // Members' pages all have the logout form.
        if render::has_form(template) || self.req.extensions().get::<CurrentUser>().is_some() {
            with_csrf_token(&self.req, &mut full);
        }
        full.insert("flashes", &flashes);
        full.extend(context);
        let html = self.state.templates.render(template, &full)?;
        Ok(html_response(status, html))
    }

    /// Renders `template` as `render` does, but from its site's plain copy
    /// (see `PlainPages`) when the request brings nothing that would change
    /// it: no member, visitor, link notice or message. `context` is the
    /// page's own, the same for every such request; it is made only when
    /// the copy is rendered, or for a request that cannot use it.
    pub fn render_plain(
        &self,
        template: &'static str,
        context: impl FnOnce() -> Context,
    ) -> AppResult<HttpResponse> {
        let flashes = self.take_flashes();
        let site = {
            let extensions = self.req.extensions();
            let brings_nothing = flashes.is_empty()
                && extensions.get::<CurrentUser>().is_none()
                && extensions.get::<CurrentVisitor>().is_none()
                && extensions.get::<InvalidLinkNotice>().is_none();
            extensions
                .get::<CurrentSite>()
                .filter(|_| brings_nothing)
                .map(|site| site.0.clone())
        };
        let Some(site) = site else {
            return self.render_with_flashes(StatusCode::OK, template, context(), flashes);
        };
        let plain = &self.state.plain_pages;
        let path = self.req.path();
        let key = (template, site.id);
        let page = match plain.pages.get(&key) {
            Some(page) if page.path == path && *page.site == *site => page,
            _ => {
                let mut full = base_context_for(&self.req, &self.state);
                full.insert("csrf_token", &plain.placeholder);
                full.insert("flashes", &[] as &[Flash]);
                full.extend(context());
                let html = self.state.templates.render(template, &full)?;
                let page = Arc::new(PlainPage {
                    site,
                    path: path.to_owned(),
                    parts: html
                        .split(&plain.placeholder)
                        .map(|part| web::Bytes::copy_from_slice(part.as_bytes()))
                        .collect(),
                });
                plain.pages.insert(key, page.clone());
                page
            }
        };
        // A token (and so the CSRF cookie) only for a page that shows one.
        let html = match page.parts.as_slice() {
            [whole] => whole.clone(),
            parts => web::Bytes::from(parts.join(csrf::token_for_page(&self.req).as_bytes())),
        };
        Ok(html_response(StatusCode::OK, html))
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

fn html_response(status: StatusCode, html: impl Into<web::Bytes>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html.into())
}

/// Pages as a browser that brings nothing of its own sees them, kept per
/// site: such a page is the same for everyone on the site but for the CSRF
/// token, so it is rendered once and the token filled in per request (Tera
/// was a quarter of the login page's time). An entry is used only while its
/// site reads the same, so a renamed site gets a new copy.
pub struct PlainPages {
    pages: quick_cache::sync::Cache<(&'static str, i64), Arc<PlainPage>>,
    /// Stands in for the token while a copy is rendered: random hex, which
    /// no site's text holds by chance and escaping leaves as it is.
    placeholder: String,
}

impl Default for PlainPages {
    fn default() -> Self {
        Self {
            // A few pages for each of a few sites: enough, and bounded.
            pages: quick_cache::sync::Cache::new(1024),
            placeholder: hex::encode(rand::random::<[u8; 16]>()),
        }
    }
}

struct PlainPage {
    site: Arc<Site>,
    path: String,
    /// The page, split where the token goes.
    parts: Vec<web::Bytes>,
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
