//! The home page (who you are), the health check and the site's static files.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tera::Context;

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::render::{self, StaticFiles};
use crate::web::page::{self, Page};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", page::get().to(home))
        .route("/healthz", page::get().to(healthz))
        .route("/static/{path:.*}", page::get().to(static_file));
}

async fn home(page: Page) -> AppResult<HttpResponse> {
    page.render_plain("home.html", Context::new)
}

/// 200 after a database round trip; 503 when the database does not answer.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match crate::db::ping(&state.db).await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body("ok\n"),
        Err(err) => {
            log::error!("Health check failed: the database did not answer: {err}");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("database unavailable\n")
        }
    }
}

/// Files from `static/`. Pages link them by fingerprinted name
/// (`render::static_url`), which browsers keep for a year without asking
/// again; a plain or outdated name is served with an ETag and revalidated.
async fn static_file(req: HttpRequest, path: web::Path<String>) -> AppResult<HttpResponse> {
    let (name, print) = match render::unfingerprinted(&path) {
        Some((name, print)) => (name, Some(print.to_owned())),
        None => (path.into_inner(), None),
    };
    let file = StaticFiles::get(&name).ok_or(AppError::NotFound)?;
    let cache_control = match print {
        Some(print) if print == render::fingerprint(&file) => "public, max-age=31536000, immutable",
        Some(_) => "no-cache",
        None => "public, max-age=3600",
    };
    let etag = format!("\"{}\"", render::fingerprint(&file));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(file.metadata.mimetype())
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .body(file.data.into_owned()))
}
