//! Changing one's e-mail address: the new address gets a link (a random
//! token, stored only as its SHA-256, valid for a day, one use, only the
//! newest one); nothing changes until it is used. Using it changes the
//! address (and a username that was the old address), tells the old
//! address, and writes an audit row, in one transaction. Two uses at the
//! same moment: one wins, the other is told the link was used.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};
use tera::Context;

use super::users::{self, CreateUserError};
use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::email_address::EmailAddress;
use crate::entities::email_changes::{self, Column, Model as EmailChange};
use crate::entities::users::Model as User;
use crate::mail::Mail;
use crate::secrets::{link_token_hash, new_link_token};
use crate::web::sites::Site;

/// How long a confirmation link works.
pub const VALID_FOR_HOURS: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    #[error("That is already your e-mail address.")]
    Same,
    #[error("Another account on this site already uses that e-mail address.")]
    Taken,
    #[error(
        "This link no longer works: it was used already, is more than a day old, or a newer \
         one was sent. Ask for a new one on your profile."
    )]
    Unusable,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Mail(#[from] tera::Error),
}

impl From<CreateUserError> for EmailChangeError {
    fn from(err: CreateUserError) -> Self {
        match err {
            CreateUserError::Db(err) => Self::Db(err),
            CreateUserError::EmailTaken | CreateUserError::UsernameTaken => Self::Taken,
        }
    }
}

/// Mails a confirmation link to `new_email`; older links of the member stop
/// working.
pub async fn request(
    state: &AppState,
    site: &Site,
    user: &User,
    new_email: &EmailAddress,
) -> Result<(), EmailChangeError> {
    if new_email.as_str() == user.email {
        return Err(EmailChangeError::Same);
    }
    if users::find_by_email(&state.db, site.id, new_email.as_str())
        .await?
        .is_some()
    {
        return Err(EmailChangeError::Taken);
    }
    let (token, token_hash) = new_link_token();
    let now = Utc::now();
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("first_name", &user.first_name);
    context.insert("username", &user.username);
    context.insert(
        "confirm_url",
        &format!("{}/accounts/profile/email/{token}", state.base_url_of(site)),
    );
    context.insert("valid_hours", &VALID_FOR_HOURS);
    let mail = Mail::from_template(&state.templates, "email_change", &context)?;
    let txn = crate::db::write_transaction(&state.db).await?;
    email_changes::Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(Some(now)))
        .filter(Column::UserId.eq(user.id))
        .filter(Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    email_changes::ActiveModel {
        site_id: Set(site.id),
        user_id: Set(user.id),
        new_email: Set(new_email.as_str().to_owned()),
        token_hash: Set(token_hash),
        created_at: Set(now),
        expires_at: Set(now + Duration::hours(VALID_FOR_HOURS)),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    state
        .mailer
        .queue_from_site(&txn, site, new_email, &mail, None, now)
        .await?;
    txn.commit().await?;
    state.mailer.wake();
    log::info!("Member {} asked to change their e-mail address.", user.id);
    Ok(())
}

/// The change a link's token stands for, while it can be used.
pub async fn find_usable(
    db: &impl ConnectionTrait,
    site: &Site,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<EmailChange>, DbErr> {
    let Some(hash) = link_token_hash(token) else {
        return Ok(None);
    };
    Ok(email_changes::Entity::find()
        .filter(Column::TokenHash.eq(hash))
        .filter(Column::SiteId.eq(site.id))
        .one(db)
        .await?
        .filter(|change| change.used_at.is_none() && now < change.expires_at))
}

/// Uses a link: the member's address becomes the new one. The claim on the
/// link is the transaction's first write, so of two simultaneous uses one
/// waits and then finds it used.
pub async fn confirm(
    state: &AppState,
    site: &Site,
    token: &str,
    now: DateTime<Utc>,
) -> Result<User, EmailChangeError> {
    let change = find_usable(&state.db, site, token, now)
        .await?
        .ok_or(EmailChangeError::Unusable)?;
    let txn = crate::db::write_transaction(&state.db).await?;
    let claimed = email_changes::Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(Some(now)))
        .filter(Column::Id.eq(change.id))
        .filter(Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let user = match users::find(&txn, site.id, change.user_id).await? {
        Some(user) if claimed.rows_affected == 1 && user.is_active => user,
        _ => {
            txn.rollback().await?;
            return Err(EmailChangeError::Unusable);
        }
    };
    let new_email = EmailAddress::parse(&change.new_email)
        .map_err(|_| DbErr::Custom("a stored new address is not an e-mail address".into()))?;
    let old_email = user.email.clone();
    let changed = match users::set_email(&txn, user, &new_email).await {
        Ok(changed) => changed,
        Err(err) => {
            txn.rollback().await?;
            return Err(err.into());
        }
    };
    notify_old_address(state, site, &txn, &changed, &old_email, now).await?;
    let actor = Actor {
        user_id: Some(changed.id),
        label: changed.username.clone(),
        display_name: None,
    };
    let subject = users::audit_subject(&changed);
    audit::record(
        &txn,
        site.id,
        &actor,
        Action::UserEmailChanged,
        &subject,
        "",
        now,
    )
    .await?;
    txn.commit().await?;
    state.mailer.wake();
    log::info!("Member {} confirmed a new e-mail address.", changed.id);
    Ok(changed)
}

/// Tells the old address where the account's mail goes now.
async fn notify_old_address(
    state: &AppState,
    site: &Site,
    txn: &impl ConnectionTrait,
    user: &User,
    old_email: &str,
    now: DateTime<Utc>,
) -> Result<(), EmailChangeError> {
    let Ok(old) = EmailAddress::parse(old_email) else {
        return Ok(());
    };
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("first_name", &user.first_name);
    context.insert("new_email", &user.email);
    let mail = Mail::from_template(&state.templates, "email_changed", &context)?;
    state
        .mailer
        .queue_from_site(txn, site, &old, &mail, None, now)
        .await?;
    Ok(())
}

/// The addresses a member asked to change to (their mail goes with the
/// account).
pub async fn addresses_of(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<String>, DbErr> {
    use sea_orm::QuerySelect;
    email_changes::Entity::find()
        .select_only()
        .column(Column::NewEmail)
        .filter(Column::UserId.eq(user_id))
        .into_tuple()
        .all(db)
        .await
}

/// Removes a member's links (for an account being deleted).
pub async fn forget_user(db: &impl ConnectionTrait, user_id: i64) -> Result<u64, DbErr> {
    Ok(email_changes::Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Removes links that expired over a day ago or were used (for `purge`);
/// with `dry_run` only counts them.
pub async fn delete_spent(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    use sea_orm::{Condition, PaginatorTrait};
    let spent = Condition::any()
        .add(Column::ExpiresAt.lt(now - Duration::days(1)))
        .add(Column::UsedAt.lt(now - Duration::days(1)));
    if dry_run {
        return email_changes::Entity::find().filter(spent).count(db).await;
    }
    Ok(email_changes::Entity::delete_many()
        .filter(spent)
        .exec(db)
        .await?
        .rows_affected)
}
