//! A new code on its way to the page that shows it once. The POST that made
//! it redirects (post/redirect/get), so the code waits in the session for
//! the next GET, sealed with a key derived from the secret: the sessions
//! table never holds a readable code either.

use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};

use super::InviteCode;
use super::issue::Issued;
use crate::secrets::Keys;
use crate::web::session::TypedSession;

#[derive(Serialize, Deserialize)]
pub struct Shown {
    pub invite_id: i64,
    code: String,
    pub outbox_id: Option<i64>,
    /// A resend (a fresh code for an existing invitation).
    pub resent: bool,
}

impl Shown {
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shown")
            .field("invite_id", &self.invite_id)
            .finish_non_exhaustive()
    }
}

/// Binds the sealed value to the staff member who made it.
fn context(user_id: i64) -> Vec<u8> {
    format!("gatehouse/shown-code\0{user_id}").into_bytes()
}

/// Keeps a new code for the next page this staff member loads.
pub fn remember(
    req: &HttpRequest,
    keys: &Keys,
    user_id: i64,
    issued: &Issued,
    resent: bool,
) -> Result<(), anyhow::Error> {
    let shown = Shown {
        invite_id: issued.invite.id,
        code: issued.code.as_str().to_owned(),
        outbox_id: issued.outbox_id,
        resent,
    };
    let plain = serde_json::to_vec(&shown)?;
    let sealed = keys.session_key().seal(&context(user_id), &plain);
    TypedSession::of(req)
        .set_shown_code(hex::encode(sealed))
        .map_err(|err| anyhow::anyhow!("could not store the new code in the session: {err}"))
}

/// Takes the waiting code out of the session (so it shows once).
pub fn take(req: &HttpRequest, keys: &Keys, user_id: i64) -> Option<Shown> {
    let sealed = TypedSession::of(req).take_shown_code()?;
    let sealed = hex::decode(sealed).ok()?;
    let plain = keys.session_key().open(&context(user_id), &sealed).ok()?;
    let shown: Shown = serde_json::from_slice(&plain).ok()?;
    InviteCode::parse(&shown.code).ok()?;
    Some(shown)
}
