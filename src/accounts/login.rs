//! The two ways in: a password (or, as the original backend allowed, the
//! invite e-mail with its code in place of the password), and a code alone.

use chrono::Utc;

use crate::AppState;
use crate::entities::users::Model as User;
use crate::invites::redeem::{self, RedeemError, Rules};
use crate::invites::{InviteCode, codes::CodeFormatError};
use crate::settings::Secret;

use super::users;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Same message whether the account is unknown or the password wrong.
    #[error("That username or e-mail and password do not match. Check them and try again.")]
    BadCredentials,
    #[error("{0}")]
    CodeFormat(#[from] CodeFormatError),
    #[error("{0}")]
    Code(RedeemError),
    #[error("Your account is inactive. Contact the staff of this site.")]
    Inactive,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl From<RedeemError> for LoginError {
    fn from(err: RedeemError) -> Self {
        match err {
            RedeemError::Db(err) => Self::Db(err),
            RedeemError::Inactive => Self::Inactive,
            other => Self::Code(other),
        }
    }
}

/// Who logged in, and with which invite if it was a code.
#[derive(Debug)]
pub struct LoggedIn {
    pub user: User,
    pub invite_id: Option<i64>,
    pub first_use: bool,
}

pub async fn with_password(
    state: &AppState,
    site_id: i64,
    login: &str,
    password: &Secret,
) -> Result<LoggedIn, LoginError> {
    if login.trim().is_empty() || password.expose().is_empty() {
        return Err(LoginError::BadCredentials);
    }
    // The connection goes back to the pool before the (slow) hash.
    let user = users::find_for_login(&state.db, site_id, login).await?;
    let stored = user.as_ref().and_then(|user| user.password_hash.as_deref());
    if state.hasher.verify(password, stored).await {
        let user = user.expect("a verified password belongs to a user");
        if !user.is_active {
            return Err(LoginError::Inactive);
        }
        let user = users::record_login(&state.db, user, Utc::now()).await?;
        return Ok(LoggedIn {
            user,
            invite_id: None,
            first_use: false,
        });
    }
    // E-mail + invitation code typed into the password form.
    let Ok(code) = InviteCode::parse(password.expose()) else {
        return Err(LoginError::BadCredentials);
    };
    match redeem_code(state, site_id, &code, Some(login)).await {
        Err(LoginError::Code(RedeemError::Unknown)) => Err(LoginError::BadCredentials),
        other => other,
    }
}

pub async fn with_code(
    state: &AppState,
    site_id: i64,
    input: &str,
) -> Result<LoggedIn, LoginError> {
    let code = InviteCode::parse(input)?;
    redeem_code(state, site_id, &code, None).await
}

async fn redeem_code(
    state: &AppState,
    site_id: i64,
    code: &InviteCode,
    email: Option<&str>,
) -> Result<LoggedIn, LoginError> {
    let rules = Rules::from(&state.settings.invites);
    let redeemed = redeem::redeem(
        &state.db,
        &state.keys,
        site_id,
        code,
        email,
        rules,
        Utc::now(),
    )
    .await?;
    Ok(LoggedIn {
        user: redeemed.user,
        invite_id: Some(redeemed.invite_id),
        first_use: redeemed.first_use,
    })
}
