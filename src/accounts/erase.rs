//! A member deleting their own account. In one transaction: staff rights
//! go first (refused when they are the last active staff member); the
//! reference requests they asked go, with the referees' links, visit logs
//! and mail; the invitations addressed to them are revoked and keep no
//! address, name or phone; mail to them, their reset and e-mail-change
//! links and their login attempts go; audit rows keep their id but lose
//! their name, and one more row says the account was deleted; the user row
//! stays as a tombstone with every personal field erased. Then every
//! session of the account ends. Invitations they sent stay, pointing at
//! the tombstone's id only.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::users::{self, RoleChange, RoleChangeError};
use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::entities::audit_log;
use crate::entities::users::Model as User;
use crate::web::sessions;

/// What a deleted account is called wherever a row still points at it.
pub fn tombstone_name(user_id: i64) -> String {
    format!("member #{user_id}")
}

/// Deletes the account (see the module's comment).
pub async fn delete_account(
    state: &AppState,
    user: &User,
    now: DateTime<Utc>,
) -> Result<(), RoleChangeError> {
    let txn = crate::db::write_transaction(&state.db).await?;
    // A write first (on SQLite it takes the write lock at once): staff
    // rights, or the account row itself. Two deletions at the same moment:
    // the second finds the account already erased and does nothing.
    if user.is_staff {
        users::change_role(&txn, user.site_id, user.id, RoleChange::RemoveStaff).await?;
    }
    if !users::erase(&txn, user.id, now).await? {
        txn.rollback().await?;
        return Ok(());
    }
    let referees = crate::references::erase_of_requester(&txn, user.id).await?;
    let mut addresses: Vec<String> = crate::invites::manage::of_member(&txn, user.id)
        .await?
        .map(|invite| invite.email)
        .into_iter()
        .chain([user.email.clone()])
        .chain(super::email_change::addresses_of(&txn, user.id).await?)
        .collect();
    addresses.sort();
    addresses.dedup();
    crate::invites::manage::erase_invitee(&txn, user.site_id, user.id, &user.email, now).await?;
    let to_erase: Vec<String> = addresses.iter().cloned().chain(referees).collect();
    crate::mail::outbox::erase_to(&txn, user.site_id, &to_erase).await?;
    super::reset::forget_user(&txn, user.id).await?;
    super::email_change::forget_user(&txn, user.id).await?;
    crate::attempts::forget_account(&txn, user.id).await?;
    anonymise_audit(&txn, user, &addresses).await?;
    let actor = Actor {
        user_id: Some(user.id),
        label: tombstone_name(user.id),
        display_name: None,
    };
    let name = tombstone_name(user.id);
    let detail = "by the member, who re-entered their password or code";
    audit::record(
        &txn,
        user.site_id,
        &actor,
        Action::UserDeleted,
        &name,
        detail,
        now,
    )
    .await?;
    txn.commit().await?;
    sessions::end_sessions_of_user(&state.db, user.id).await?;
    log::info!("Member {} deleted their account.", user.id);
    Ok(())
}

/// Audit rows keep the member's id but no longer their name or address:
/// rows they made name them `member #id`; rows about them (subject
/// `name (#id)`, or one of their addresses) likewise.
async fn anonymise_audit(
    db: &impl ConnectionTrait,
    user: &User,
    addresses: &[String],
) -> Result<(), DbErr> {
    let name = tombstone_name(user.id);
    audit_log::Entity::update_many()
        .col_expr(audit_log::Column::Actor, Expr::value(name.clone()))
        .filter(audit_log::Column::ActorId.eq(user.id))
        .exec(db)
        .await?;
    let about = sea_orm::Condition::any()
        .add(audit_log::Column::Subject.like(format!("% (#{})", user.id)))
        .add(audit_log::Column::Subject.is_in(addresses.iter().cloned()))
        .add(audit_log::Column::Subject.eq(user.username.clone()));
    audit_log::Entity::update_many()
        .col_expr(audit_log::Column::Subject, Expr::value(name))
        .filter(audit_log::Column::SiteId.eq(user.site_id))
        .filter(about)
        .exec(db)
        .await?;
    Ok(())
}
