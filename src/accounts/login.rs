//! The two ways in: a password (or, as the original backend allowed, the
//! invite e-mail with its code in place of the password), and a code alone.
//! A code's first use creates the member, or logs in the one with the
//! invite's e-mail; later uses log the same member in.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, SqlErr, Statement,
};

use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::entities::invites;
use crate::entities::users::{self as user_entity, Model as User};
use crate::invites::redeem::{self, RedeemError, Rules};
use crate::invites::{InviteCode, codes::CodeFormatError};
use crate::settings::Secret;
use crate::web::auth::CodeSession;

use super::{django_hashes, users};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Same message whether the account is unknown or the password wrong.
    #[error("That username or e-mail and password do not match. Check them and try again.")]
    BadCredentials,
    #[error("{0}")]
    CodeFormat(#[from] CodeFormatError),
    #[error("{0}")]
    Code(RedeemError),
    #[error("Your account has been deactivated. Contact the staff of this site.")]
    Inactive,
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<RedeemError> for LoginError {
    fn from(err: RedeemError) -> Self {
        match err {
            RedeemError::Db(err) => Self::Db(err),
            other => Self::Code(other),
        }
    }
}

/// Who logged in, and with which invite (and until when) if it was a code.
#[derive(Debug)]
pub struct LoggedIn {
    pub user: User,
    pub code: Option<CodeSession>,
    pub first_use: bool,
    /// The write of `user`'s last login time when it is not made yet: the
    /// caller runs it together with the attempt's outcome.
    pub login_record: Option<Statement>,
}

/// `user` is the account `login` names (`users::find_for_login`), looked
/// up by the caller, with no connection held across the (slow) hash.
pub async fn with_password(
    state: &AppState,
    site_id: i64,
    login: &str,
    user: Option<User>,
    password: &Secret,
) -> Result<LoggedIn, LoginError> {
    if login.trim().is_empty() || password.expose().is_empty() {
        return Err(LoginError::BadCredentials);
    }
    let stored = user.as_ref().and_then(|user| user.password_hash.as_deref());
    if state.hasher.verify(password, stored).await {
        let user = user.expect("a verified password belongs to a user");
        if !user.is_active {
            return Err(LoginError::Inactive);
        }
        upgrade_hash(state, &user, password).await;
        let (user, record) = users::login_record(state.db.get_database_backend(), user, Utc::now());
        return Ok(LoggedIn {
            user,
            code: None,
            first_use: false,
            login_record: Some(record),
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

/// A password that just verified against an imported (Django) hash is
/// hashed again with argon2id, as Django upgrades hashers at login. A
/// failure is logged and the login goes on: the old hash still works.
async fn upgrade_hash(state: &AppState, user: &User, password: &Secret) {
    let Some(stored) = user.password_hash.as_deref() else {
        return;
    };
    if django_hashes::is_current(stored) {
        return;
    }
    let result = match state.hasher.hash(password).await {
        Ok(hash) => users::set_password_hash(&state.db, user.id, hash)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match result {
        Ok(()) => log::info!(
            "Member {} logged in with an imported password hash; it is now argon2id.",
            user.id
        ),
        Err(err) => log::error!(
            "Could not re-hash member {}'s imported password: {err}",
            user.id
        ),
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
    let now = Utc::now();
    let invite = redeem::usable(&state.db, &state.keys, site_id, code, email, rules, now).await?;
    // When someone else's first use wins the race, this is a later use.
    if invite.first_used_at.is_none()
        && let Some(user) = first_use(&state.db, &invite, now).await?
    {
        return Ok(LoggedIn {
            user,
            code: Some(CodeSession {
                invite_id: invite.id,
                ends_at: rules.code_session_ends_at(now),
            }),
            first_use: true,
            login_record: None,
        });
    }
    let used = redeem::later_use(&state.db, invite.id, rules, now).await?;
    let user = user_entity::Entity::find_by_id(used.user_id)
        .one(&state.db)
        .await?
        .ok_or(LoginError::Code(RedeemError::NoLongerUsable))?;
    if !user.is_active {
        return Err(LoginError::Inactive);
    }
    let (user, record) = users::login_record(state.db.get_database_backend(), user, now);
    Ok(LoggedIn {
        user,
        code: Some(CodeSession {
            invite_id: used.invite_id,
            ends_at: rules.code_session_ends_at(used.first_used_at),
        }),
        first_use: false,
        login_record: Some(record),
    })
}

/// Claims the invite's first use and creates or links the member, in one
/// transaction. `None` when another request claimed it first.
async fn first_use(
    db: &DatabaseConnection,
    invite: &invites::Model,
    now: DateTime<Utc>,
) -> Result<Option<User>, LoginError> {
    // Two attempts: the second covers a concurrent signup of the same e-mail
    // through another invite (unique index), which then finds that member.
    for attempt in 0..2 {
        let txn = crate::db::write_transaction(db).await?;
        if !redeem::claim(&txn, invite.id, now).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        let user = match users::find_by_email(&txn, invite.site_id, &invite.email).await? {
            Some(user) if !user.is_active => {
                txn.rollback().await?;
                return Err(LoginError::Inactive);
            }
            Some(user) if invite.grants_staff && !user.is_staff => {
                let mut active: user_entity::ActiveModel = user.into();
                active.is_staff = Set(true);
                active.update(&txn).await?
            }
            Some(user) => user,
            None => match users::create_for_invite(&txn, invite).await {
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
        redeem::link_member(&txn, invite.id, user.id).await?;
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
                &users::audit_subject(&user),
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
        return Ok(Some(user));
    }
    Err(LoginError::Db(DbErr::Custom(
        "could not create the member after a concurrent signup".into(),
    )))
}
