//! The home page (who you are), the health check and the site's static files.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tera::Context;

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::web::page::{self, Page};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", page::get().to(home))
        .route("/healthz", page::get().to(healthz))
        .route("/static/{path:.*}", page::get().to(static_file));
}

async fn home(page: Page) -> AppResult<HttpResponse> {
    page.render("home.html", Context::new())
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

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct StaticFiles;

/// Files from `static/`, embedded in release builds, with an ETag and a
/// short cache lifetime (names are not fingerprinted).
async fn static_file(req: HttpRequest, path: web::Path<String>) -> AppResult<HttpResponse> {
    let file = StaticFiles::get(&path).ok_or(AppError::NotFound)?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(file.metadata.mimetype())
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(file.data.into_owned()))
}
