//! The staff guard: one middleware around the `/staff` scope (and
//! `/invites/send`), so a staff page cannot be added without it. Anonymous
//! → the login page (back here afterwards); members → 403. It asks the
//! `Staff` extractor, so the answer is the one handlers used to give.

use actix_web::FromRequest;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use serde::Deserialize;

use crate::web::auth::{Staff, safe_next};
use crate::web::error_pages::respond_with;

pub async fn require_staff(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match Staff::extract(req.request()).await {
        Ok(_) => Ok(next.call(req).await?.map_into_left_body()),
        Err(err) => Ok(respond_with(req, err)),
    }
}

/// The form of a staff list row's action button: just where the list was.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BackForm {
    pub back: String,
}

/// Where to go back to after a staff action: the list the form was on
/// (a local path under `prefix`), else the list itself.
pub fn back_to(back: &str, prefix: &str) -> String {
    safe_next(Some(back))
        .filter(|path| path.starts_with(prefix))
        .unwrap_or_else(|| prefix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_only_return_to_their_own_list() {
        assert_eq!(
            back_to("/staff/invites?q=x&page=2", "/staff/invites"),
            "/staff/invites?q=x&page=2"
        );
        assert_eq!(
            back_to("https://evil.example", "/staff/invites"),
            "/staff/invites"
        );
        assert_eq!(
            back_to("/accounts/logout", "/staff/invites"),
            "/staff/invites"
        );
    }
}
