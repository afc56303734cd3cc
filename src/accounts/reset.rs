//! Password reset by e-mail. Asking always gets the same answer, whether or
//! not the account exists (the work is done after the answer is sent, so
//! timing says nothing either). A link holds a random token, stored only as
//! its SHA-256, valid for an hour and for one use; using it sets the password
//! and ends every session of the account. Opening the link moves the reset's
//! id into the session and redirects to an address without the token (as
//! Django does), so the token is in no log, Referer or browser history.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use tera::Context;

use super::users;
use crate::AppState;
use crate::email_address::EmailAddress;
use crate::entities::password_resets::{self, Column};
use crate::entities::users::Model as User;
use crate::mail::Mail;
use crate::secrets::{link_token_hash, new_link_token};
use crate::web::sites::Site;

/// How long a reset link works.
pub const VALID_FOR_MINUTES: i64 = 60;

/// Sends a reset link to the account `login` names, if there is one.
pub async fn request(state: &AppState, site: &Site, login: &str) -> anyhow::Result<()> {
    let Some(user) = users::find_for_login(&state.db, site.id, login)
        .await?
        .filter(|user| user.is_active)
    else {
        return Ok(());
    };
    let Ok(email) = EmailAddress::parse(&user.email) else {
        log::warn!(
            "Member {} has no usable e-mail address for a reset link.",
            user.id
        );
        return Ok(());
    };
    let (token, token_hash) = new_link_token();
    let now = Utc::now();
    let link = format!(
        "{}/accounts/password/reset/{token}",
        state.base_url_of(site)
    );
    let mail = reset_mail(state, site, &user, &link)?;
    let txn = crate::db::write_transaction(&state.db).await?;
    // A new link makes older ones useless.
    password_resets::Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(Some(now)))
        .filter(Column::UserId.eq(user.id))
        .filter(Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    password_resets::ActiveModel {
        site_id: Set(site.id),
        user_id: Set(user.id),
        token_hash: Set(token_hash),
        created_at: Set(now),
        expires_at: Set(now + Duration::minutes(VALID_FOR_MINUTES)),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    state
        .mailer
        .queue_from_site(&txn, site, &email, &mail, None, now)
        .await?;
    txn.commit().await?;
    state.mailer.wake();
    log::info!("A password reset link was sent to member {}.", user.id);
    Ok(())
}

fn reset_mail(state: &AppState, site: &Site, user: &User, link: &str) -> tera::Result<Mail> {
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("first_name", &user.first_name);
    context.insert("username", &user.username);
    context.insert("reset_url", link);
    context.insert("valid_minutes", &VALID_FOR_MINUTES);
    Mail::from_template(&state.templates, "password_reset", &context)
}

/// A reset that can still be used, with the member it is for.
pub type UsableReset = (password_resets::Model, User);

/// The member a reset token belongs to, while the token is usable.
pub async fn find_usable(
    state: &AppState,
    site: &Site,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<UsableReset>, DbErr> {
    let Some(hash) = link_token_hash(token) else {
        return Ok(None);
    };
    let reset = password_resets::Entity::find()
        .filter(Column::TokenHash.eq(hash))
        .filter(Column::SiteId.eq(site.id))
        .one(&state.db)
        .await?;
    usable(state, reset, now).await
}

/// The reset with this id (what the session keeps once the link was
/// opened), with its member, while it is usable.
pub async fn find_usable_by_id(
    state: &AppState,
    site: &Site,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Option<UsableReset>, DbErr> {
    let reset = password_resets::Entity::find_by_id(id)
        .filter(Column::SiteId.eq(site.id))
        .one(&state.db)
        .await?;
    usable(state, reset, now).await
}

async fn usable(
    state: &AppState,
    reset: Option<password_resets::Model>,
    now: DateTime<Utc>,
) -> Result<Option<UsableReset>, DbErr> {
    let Some(reset) = reset.filter(|reset| reset.used_at.is_none() && now < reset.expires_at)
    else {
        return Ok(None);
    };
    let user = crate::entities::users::Entity::find_by_id(reset.user_id)
        .one(&state.db)
        .await?
        .filter(|user| user.is_active);
    Ok(user.map(|user| (reset, user)))
}

/// Uses the reset: sets the new password hash if the link is still unused
/// (one use only, even when two requests race). False when it was used.
pub async fn complete(
    state: &AppState,
    reset: &password_resets::Model,
    hash: String,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let txn = crate::db::write_transaction(&state.db).await?;
    let claimed = password_resets::Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(Some(now)))
        .filter(Column::Id.eq(reset.id))
        .filter(Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    users::set_password_hash(&txn, reset.user_id, hash).await?;
    txn.commit().await?;
    crate::web::sessions::end_sessions_of_user(&state.db, reset.user_id).await?;
    Ok(true)
}

/// Removes a member's links (for an account being deleted).
pub async fn forget_user(db: &impl sea_orm::ConnectionTrait, user_id: i64) -> Result<u64, DbErr> {
    Ok(password_resets::Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Removes links that expired over a day ago (for `purge`).
pub async fn delete_expired(
    db: &impl sea_orm::ConnectionTrait,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    let cutoff = now - Duration::days(1);
    let old = password_resets::Entity::find().filter(Column::ExpiresAt.lt(cutoff));
    let count = old.count(db).await?;
    if !dry_run {
        password_resets::Entity::delete_many()
            .filter(Column::ExpiresAt.lt(cutoff))
            .exec(db)
            .await?;
    }
    Ok(count)
}
