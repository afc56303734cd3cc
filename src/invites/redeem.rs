//! Redeeming a code at login, the invites' half: whether a code may be used
//! now, claiming its first use (within `usage_window_days` of creation) and
//! the later uses (for `expiry_days` after first use; 0 = one use only).
//! First use is claimed with a single conditional UPDATE, so two simultaneous
//! first uses make exactly one member. The member is `accounts`' business:
//! it makes or finds them and links them with `link_member`.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::InviteCode;
use crate::entities::invites;
use crate::secrets::Keys;
use crate::settings::InviteSettings;

/// Why a code did not log anyone in. The messages are the ones people see;
/// none of them says whether an e-mail address has an account.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("That code is not valid. Check it against your invitation.")]
    Unknown,
    #[error("That code has expired. Ask the person who invited you for a new one.")]
    Expired,
    #[error(
        "That code has expired and can no longer be used. Log in with your password if you \
         have set one, or ask the person who invited you for a new code."
    )]
    NoLongerUsable,
    #[error(
        "This invitation was withdrawn, so its code no longer works. If you think this is a \
         mistake, ask the person who invited you."
    )]
    Withdrawn,
    #[error(
        "This code was replaced by a newer one: use the code in the latest invitation e-mail \
         we sent you."
    )]
    Replaced,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A later use of a code: the member its first use linked.
#[derive(Debug)]
pub struct LaterUse {
    pub invite_id: i64,
    pub user_id: i64,
    pub first_used_at: DateTime<Utc>,
}

/// Rules in force, from settings.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub usage_window: Duration,
    /// `None`: one use only.
    pub valid_after_first_use: Option<Duration>,
}

impl Rules {
    /// When a session started with a code first used at `first_used_at`
    /// ends; `None` for a one-shot code, whose session lasts until revoked.
    pub fn code_session_ends_at(self, first_used_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.valid_after_first_use
            .map(|validity| first_used_at + validity)
    }
}

impl From<&InviteSettings> for Rules {
    fn from(settings: &InviteSettings) -> Self {
        Self {
            usage_window: Duration::days(settings.usage_window_days.into()),
            valid_after_first_use: (settings.expiry_days > 0)
                .then(|| Duration::days(settings.expiry_days.into())),
        }
    }
}

/// Looks a code up on a site and checks that it may be used now. With
/// `email`, the invite must be for that address (the password form's
/// "e-mail + code"). Unused (`first_used_at` empty): claim it; used: see
/// `later_use`.
pub async fn usable(
    db: &impl ConnectionTrait,
    keys: &Keys,
    site_id: i64,
    code: &InviteCode,
    email: Option<&str>,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<invites::Model, RedeemError> {
    let invite = invites::Entity::find()
        .filter(invites::Column::SiteId.eq(site_id))
        .filter(invites::Column::CodeHmac.eq(keys.code_hmac(code.as_str())))
        .one(db)
        .await?
        .ok_or(RedeemError::Unknown)?;
    if let Some(email) = email
        && !invite.email.eq_ignore_ascii_case(email.trim())
    {
        return Err(RedeemError::Unknown);
    }
    if invite.revoked_at.is_some() {
        return Err(revoked(db, &invite).await?);
    }
    if invite.first_used_at.is_none() && now - invite.created_at > rules.usage_window {
        return Err(RedeemError::Expired);
    }
    Ok(invite)
}

/// Why a revoked code fails: replaced when the same address has a newer
/// invitation (a resend), else withdrawn.
async fn revoked(db: &impl ConnectionTrait, invite: &invites::Model) -> Result<RedeemError, DbErr> {
    use sea_orm::PaginatorTrait;
    let newer = invites::Entity::find()
        .filter(invites::Column::SiteId.eq(invite.site_id))
        .filter(invites::Column::Email.eq(invite.email.clone()))
        .filter(invites::Column::Id.gt(invite.id))
        .count(db)
        .await?;
    Ok(if newer > 0 {
        RedeemError::Replaced
    } else {
        RedeemError::Withdrawn
    })
}

/// Claims the invite's first use, in the caller's transaction. False when
/// another request claimed it first (this is then a later use). The write
/// comes first in the transaction: on SQLite it takes the write lock at once
/// (a read-then-write transaction could fail with SQLITE_BUSY).
pub async fn claim(
    txn: &impl ConnectionTrait,
    invite_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = invites::Entity::update_many()
        .col_expr(invites::Column::FirstUsedAt, Expr::value(now))
        .filter(invites::Column::Id.eq(invite_id))
        .filter(invites::Column::FirstUsedAt.is_null())
        .exec(txn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Records the member a claimed invite made or logged in.
pub async fn link_member(
    txn: &impl ConnectionTrait,
    invite_id: i64,
    user_id: i64,
) -> Result<(), DbErr> {
    invites::Entity::update_many()
        .col_expr(invites::Column::UserId, Expr::value(user_id))
        .filter(invites::Column::Id.eq(invite_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// A use after the first: allowed for `expiry_days` after first use, for
/// the member the first use linked.
pub async fn later_use(
    db: &impl ConnectionTrait,
    invite_id: i64,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<LaterUse, RedeemError> {
    // Re-read: the caller's copy may predate a concurrent first use.
    let invite = invites::Entity::find_by_id(invite_id)
        .one(db)
        .await?
        .ok_or(RedeemError::Unknown)?;
    let Some(first_used_at) = invite.first_used_at else {
        return Err(RedeemError::Unknown);
    };
    if invite.revoked_at.is_some() {
        return Err(revoked(db, &invite).await?);
    }
    let still_valid = rules
        .valid_after_first_use
        .is_some_and(|validity| now - first_used_at <= validity);
    if !still_valid {
        return Err(RedeemError::NoLongerUsable);
    }
    let user_id = invite.user_id.ok_or(RedeemError::NoLongerUsable)?;
    Ok(LaterUse {
        invite_id: invite.id,
        user_id,
        first_used_at,
    })
}
