//! Setting or changing a member's own password: the rules for the new one,
//! the current one checked under the account's login limits, the new hash
//! stored, and every other session of the account ended.

use super::{gate, users};
use crate::AppState;
use crate::attempts::{Attempt, Outcome};
use crate::error::AppResult;
use crate::settings::Secret;
use crate::web::auth::CurrentUser;
use crate::web::forms::FormErrors;
use crate::web::sessions;

/// What was typed on the password page.
pub struct PasswordChange {
    pub current: Secret,
    pub new: Secret,
    pub confirm: Secret,
}

/// What happened, for the confirmation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// A code-only account now has a password.
    Set,
    /// The password was replaced; the account's other sessions ended.
    Replaced,
}

/// Changes the password, or returns the form's errors with nothing changed.
/// `attempt` is this request's attempt on the account, counted only when a
/// current password is checked (it is guessed like a login by whoever holds
/// a stolen session).
pub async fn change_password(
    state: &AppState,
    member: &CurrentUser,
    attempt: Attempt,
    typed: PasswordChange,
) -> AppResult<Result<Changed, FormErrors>> {
    let mut errors = super::check_new_password(
        &typed.new,
        &typed.confirm,
        state.settings.passwords.min_length,
        &[&member.username, &member.email],
    );
    if member.has_password {
        if typed.current.expose().is_empty() {
            errors.add("current_password", "Enter your current password.");
        } else if !current_password_matches(state, member, attempt, &typed.current).await? {
            errors.add("current_password", "That is not your current password.");
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let hash = state
        .hasher
        .hash(&typed.new)
        .await
        .map_err(|err| anyhow::anyhow!(err))?;
    users::set_password_hash(&state.db, member.id, hash).await?;
    sessions::end_sessions_of_user(&state.db, member.id).await?;
    Ok(Ok(if member.has_password {
        Changed::Replaced
    } else {
        Changed::Set
    }))
}

async fn current_password_matches(
    state: &AppState,
    member: &CurrentUser,
    attempt: Attempt,
    current: &Secret,
) -> AppResult<bool> {
    let stored = users::find_for_login(&state.db, member.site_id, &member.username)
        .await?
        .filter(|user| user.id == member.id)
        .and_then(|user| user.password_hash);
    let (ticket, _) = gate::admit(state, &attempt).await?;
    let matches = state.hasher.verify(current, stored.as_deref()).await;
    let outcome = if matches {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    };
    ticket.resolve(&state.db, outcome).await?;
    Ok(matches)
}
