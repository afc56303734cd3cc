//! Redeeming a code at login. First use (within `usage_window_days` of
//! creation) creates the member, or logs in the one with the invite's e-mail;
//! later uses log the same member in for `expiry_days` after first use
//! (0 = one use only). First use is claimed with a single conditional UPDATE,
//! so two simultaneous first uses make exactly one member.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, SqlErr, TransactionTrait,
};

use super::{InviteCode, split_name};
use crate::accounts::users;
use crate::audit::{self, Action, Actor};
use crate::entities::{invites, users as user_entity};
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
    #[error("Your account is inactive. Contact the staff of this site.")]
    Inactive,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A successful redemption.
#[derive(Debug)]
pub struct Redeemed {
    pub user: user_entity::Model,
    pub invite_id: i64,
    /// True when this use created (or first linked) the account.
    pub first_use: bool,
}

/// Rules in force, from settings.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub usage_window: Duration,
    /// `None`: one use only.
    pub valid_after_first_use: Option<Duration>,
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

/// Looks a code up on a site. With `email`, the invite must be for that
/// address (the password form's "e-mail + code").
pub async fn redeem(
    db: &DatabaseConnection,
    keys: &Keys,
    site_id: i64,
    code: &InviteCode,
    email: Option<&str>,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<Redeemed, RedeemError> {
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
        return Err(RedeemError::NoLongerUsable);
    }
    if invite.first_used_at.is_none() {
        if now - invite.created_at > rules.usage_window {
            return Err(RedeemError::Expired);
        }
        if let Some(redeemed) = first_use(db, &invite, now).await? {
            return Ok(redeemed);
        }
        // Someone else's first use won the race: this is a later use.
    }
    later_use(db, invite.id, rules, now).await
}

/// Claims the invite's first use and creates or links the member, in one
/// transaction. `None` when another request claimed it first.
async fn first_use(
    db: &DatabaseConnection,
    invite: &invites::Model,
    now: DateTime<Utc>,
) -> Result<Option<Redeemed>, RedeemError> {
    // Two attempts: the second covers a concurrent signup of the same e-mail
    // through another invite (unique index), which then finds that member.
    for attempt in 0..2 {
        let txn = db.begin().await?;
        // The write comes first: on SQLite it takes the write lock at once
        // (a read-then-write transaction could fail with SQLITE_BUSY).
        let claimed = invites::Entity::update_many()
            .col_expr(invites::Column::FirstUsedAt, Expr::value(now))
            .filter(invites::Column::Id.eq(invite.id))
            .filter(invites::Column::FirstUsedAt.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let user = match users::find_by_email(&txn, invite.site_id, &invite.email).await? {
            Some(user) if !user.is_active => {
                txn.rollback().await?;
                return Err(RedeemError::Inactive);
            }
            Some(user) if invite.grants_staff && !user.is_staff => {
                let mut active: user_entity::ActiveModel = user.into();
                active.is_staff = Set(true);
                active.update(&txn).await?
            }
            Some(user) => user,
            None => match create_member(&txn, invite, now).await {
                Ok(user) => user,
                Err(err)
                    if attempt == 0
                        && matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
                {
                    txn.rollback().await?;
                    continue;
                }
                Err(err) => return Err(err.into()),
            },
        };
        invites::Entity::update_many()
            .col_expr(invites::Column::UserId, Expr::value(user.id))
            .filter(invites::Column::Id.eq(invite.id))
            .exec(&txn)
            .await?;
        if invite.grants_staff {
            // The first-start staff code: the member made themselves staff.
            let actor = Actor {
                user_id: Some(user.id),
                label: user.username.clone(),
                display_name: None,
            };
            let detail = format!(
                "with the first-start staff code (invitation #{})",
                invite.id
            );
            audit::record(
                &txn,
                invite.site_id,
                &actor,
                Action::UserMadeStaff,
                &user.username,
                &detail,
                now,
            )
            .await?;
        }
        let user = users::record_login(&txn, user, now).await?;
        txn.commit().await?;
        log::info!(
            "Invite {} was used for the first time; member {} logged in.",
            invite.id,
            user.id
        );
        return Ok(Some(Redeemed {
            user,
            invite_id: invite.id,
            first_use: true,
        }));
    }
    Err(RedeemError::Db(DbErr::Custom(
        "could not create the member after a concurrent signup".into(),
    )))
}

async fn create_member(
    db: &impl ConnectionTrait,
    invite: &invites::Model,
    now: DateTime<Utc>,
) -> Result<user_entity::Model, DbErr> {
    let (first_name, last_name) = split_name(&invite.name);
    user_entity::ActiveModel {
        site_id: Set(invite.site_id),
        username: Set(invite.email.clone()),
        email: Set(invite.email.clone()),
        first_name: Set(first_name),
        last_name: Set(last_name),
        phone: Set(invite.phone.clone()),
        password_hash: Set(None),
        is_staff: Set(invite.grants_staff),
        is_active: Set(true),
        created_at: Set(now),
        last_login_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

async fn later_use(
    db: &DatabaseConnection,
    invite_id: i64,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<Redeemed, RedeemError> {
    // Re-read: the caller's copy may predate a concurrent first use.
    let invite = invites::Entity::find_by_id(invite_id)
        .one(db)
        .await?
        .ok_or(RedeemError::Unknown)?;
    let Some(first_used_at) = invite.first_used_at else {
        return Err(RedeemError::Unknown);
    };
    let still_valid = rules
        .valid_after_first_use
        .is_some_and(|validity| now - first_used_at <= validity);
    if !still_valid || invite.revoked_at.is_some() {
        return Err(RedeemError::NoLongerUsable);
    }
    let user = match invite.user_id {
        Some(user_id) => user_entity::Entity::find_by_id(user_id).one(db).await?,
        None => None,
    }
    .ok_or(RedeemError::NoLongerUsable)?;
    if !user.is_active {
        return Err(RedeemError::Inactive);
    }
    let user = users::record_login(db, user, now).await?;
    Ok(Redeemed {
        user,
        invite_id: invite.id,
        first_use: false,
    })
}
