//! Web plumbing shared by every capability: sessions, who is asking, CSRF,
//! the site of the request, input guards, forms, pages and error pages,
//! pagination. It knows no capability: capabilities build on it.

pub mod access_log;
pub mod auth;
pub mod client;
pub mod confirm;
pub mod csrf;
pub mod error_pages;
pub mod forms;
pub mod input;
pub mod page;
pub mod pager;
pub mod session;
pub mod session_cache;
pub mod session_feed;
pub mod sessions;
pub mod sites;
pub mod staff_guard;
pub mod visitor;

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;

use crate::AppState;

/// The application state, for middleware (handlers take `web::Data<AppState>`).
/// `Application` registers it on every app, so its absence is a bug.
pub fn app_state(req: &ServiceRequest) -> actix_web::web::Data<AppState> {
    req.app_data::<actix_web::web::Data<AppState>>()
        .cloned()
        .expect("application state is registered")
}

/// Whether a request may write: any method but GET, HEAD and OPTIONS.
pub fn may_write(req: &ServiceRequest) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}
