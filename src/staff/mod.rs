//! Staff pages: `/staff/invites` (list, revoke, resend), `/staff/mail`
//! (pending and failed mail, retry) and `/staff/audit`. Every handler takes
//! the `Staff` extractor: anonymous → login page, members → 403.

mod audit;
mod invites;
mod mail;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    invites::routes(cfg);
    mail::routes(cfg);
    audit::routes(cfg);
}

/// The form of a row's action button: just where the list was.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct BackForm {
    back: String,
}

/// Where to go back to after a staff action: the list the form was on
/// (a local path under `prefix`), else the list itself.
fn back_to(back: &str, prefix: &str) -> String {
    crate::web::auth::safe_next(Some(back))
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
