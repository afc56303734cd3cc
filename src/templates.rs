//! Tera templates (embedded in release builds, read from `templates/` in debug
//! builds) and the `Page` extractor that renders them with what every page
//! needs: the site, who is asking, the CSRF token and one-shot messages.

use std::future::{Ready, ready};

use actix_session::SessionExt;
use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, dev::Payload, http::StatusCode, web,
};
use serde::{Deserialize, Serialize};
use tera::{Context, Tera};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::csrf::CsrfToken;
use crate::error::{AppError, AppResult};
use crate::sites::CurrentSite;
use crate::visitors::CurrentVisitor;
use crate::visitors::middleware::InvalidLinkNotice;

#[derive(rust_embed::Embed)]
#[folder = "templates/"]
struct TemplateFiles;

/// Loads every template. Names ending in `.html` are autoescaped.
pub fn load() -> Result<Tera, tera::Error> {
    let mut tera = Tera::default();
    let mut files = Vec::new();
    for name in TemplateFiles::iter() {
        let file = TemplateFiles::get(&name).expect("listed files exist");
        let text = String::from_utf8(file.data.into_owned())
            .map_err(|_| tera::Error::msg(format!("template {name} is not UTF-8")))?;
        files.push((name.into_owned(), text));
    }
    tera.add_raw_templates(files)?;
    Ok(tera)
}

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

const FLASH_KEY: &str = "flash";

/// Queues a message for the next page this session renders.
pub fn flash(req: &HttpRequest, level: FlashLevel, text: impl Into<String>) {
    let session = req.get_session();
    let mut flashes: Vec<Flash> = session.get(FLASH_KEY).ok().flatten().unwrap_or_default();
    flashes.push(Flash {
        level,
        text: text.into(),
    });
    if let Err(err) = session.insert(FLASH_KEY, flashes) {
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
    context.insert(
        "visitor_link_invalid",
        &extensions.get::<InvalidLinkNotice>().is_some(),
    );
    context.insert(
        "csrf_token",
        extensions
            .get::<CsrfToken>()
            .map_or("", |token| token.0.as_str()),
    );
    context.insert("current_path", req.path());
    context.insert("flashes", &Vec::<Flash>::new());
    context
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
        errors: &crate::forms::FormErrors,
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
        let session = self.req.get_session();
        // Only touch the session when there is something: removing marks it
        // changed, which would write a row for every anonymous page view.
        match session.get::<Vec<Flash>>(FLASH_KEY) {
            Ok(Some(flashes)) => {
                session.remove(FLASH_KEY);
                flashes
            }
            Ok(None) => Vec::new(),
            Err(_) => {
                session.remove(FLASH_KEY);
                Vec::new()
            }
        }
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
