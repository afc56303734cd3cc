//! `/visitors/enter` (a link's "continue" button) and the demo scope.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use tera::Context;

use super::tokens::LinkToken;
use super::{VisitorGuard, is_valid};
use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::web::auth::{MaybeUser, safe_next};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::sites::CurrentSite;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/visitors/enter").route(web::post().to(enter)))
        .service(
            web::resource("/visitors/demo")
                .wrap(VisitorGuard::scope("demo"))
                .route(page::get().to(demo)),
        )
        // The demo of "request access": anyone turned away may ask for a
        // pass of scope demo-self-service by e-mail.
        .service(
            web::resource("/visitors/demo/self-service")
                .wrap(VisitorGuard::scope("demo-self-service").self_service())
                .route(page::get().to(demo)),
        );
    super::self_service::routes(cfg);
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct EnterForm {
    token: String,
    next: String,
}

/// The explicit action that starts a visitor session.
async fn enter(
    req: HttpRequest,
    state: web::Data<AppState>,
    site: CurrentSite,
    form: web::Form<EnterForm>,
) -> AppResult<HttpResponse> {
    let token =
        LinkToken::parse(&form.token).map_err(|err| AppError::BadRequest(err.to_string()))?;
    let target = safe_next(Some(&form.next)).unwrap_or_else(|| "/".to_owned());
    let visitor = super::find_by_token(&state.db, &token)
        .await?
        .filter(|visitor| is_valid(visitor, Utc::now()) && visitor.site_id == site.0.id);
    let Some(visitor) = visitor else {
        flash(
            &req,
            FlashLevel::Warning,
            "This visitor link is no longer valid. Ask the person who sent it for a new one.",
        );
        return Ok(see_other(&target));
    };
    super::middleware::stash(&req, &state, &visitor)?;
    super::middleware::record_use(&req, &state, &visitor.id, 303).await;
    log::info!("Visitor {} entered (scope {}).", visitor.id, visitor.scope);
    Ok(see_other(&target))
}

/// Shows visitors of scope "demo" who they are; members pass too (the
/// default bypass), and see that they are not a visitor.
async fn demo(
    page: Page,
    user: MaybeUser,
    visitor: super::MaybeVisitor,
) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("is_member", &user.0.is_some());
    if let Some(visitor) = visitor.0 {
        log::debug!("Visitor {} opened the demo page.", visitor.id);
    }
    page.render("visitors/demo.html", context)
}
