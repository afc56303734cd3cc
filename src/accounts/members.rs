//! Staff managing members, in the browser or from the command line:
//! deactivate (every session ends, logins are refused) and reactivate,
//! make and remove staff. Each change writes its audit row in its own
//! transaction; a site is never left without an active staff member.

use chrono::Utc;
use sea_orm::DatabaseConnection;

use super::users::{self, RoleChange, RoleChangeError};
use crate::audit::{self, Action, Actor};
use crate::entities::users::Model as User;
use crate::web::sessions;

#[derive(Debug, thiserror::Error)]
pub enum MemberChangeError {
    #[error("You cannot deactivate your own account. Ask another staff member.")]
    Yourself,
    #[error(transparent)]
    Role(#[from] RoleChangeError),
}

impl From<sea_orm::DbErr> for MemberChangeError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Role(RoleChangeError::Db(err))
    }
}

/// What a change did: the member after it, and whether anything changed
/// (deactivating an inactive member changes nothing and writes no row).
pub struct Changed {
    pub user: User,
    pub changed: bool,
    /// Sessions ended (by a deactivation).
    pub sessions_ended: u64,
}

impl RoleChange {
    fn action(self) -> Action {
        match self {
            Self::Deactivate => Action::UserDeactivated,
            Self::Reactivate => Action::UserReactivated,
            Self::MakeStaff => Action::UserMadeStaff,
            Self::RemoveStaff => Action::UserStaffRemoved,
        }
    }

    /// What to say afterwards, naming the member `name`.
    pub fn done(self, name: &str, changed: bool) -> String {
        match (self, changed) {
            (Self::Deactivate, true) => {
                format!("{name} was deactivated: their sessions ended and they cannot log in.")
            }
            (Self::Deactivate, false) => format!("{name} was already deactivated."),
            (Self::Reactivate, true) => format!("{name} was reactivated and can log in again."),
            (Self::Reactivate, false) => format!("{name} was already active."),
            (Self::MakeStaff, true) => format!("{name} is now a staff member."),
            (Self::MakeStaff, false) => format!("{name} was already a staff member."),
            (Self::RemoveStaff, true) => format!("{name} is no longer a staff member."),
            (Self::RemoveStaff, false) => format!("{name} was not a staff member."),
        }
    }
}

/// Applies `change` to a member of `site_id` on behalf of `actor`.
pub async fn change(
    db: &DatabaseConnection,
    site_id: i64,
    actor: &Actor,
    user_id: i64,
    change: RoleChange,
    detail: &str,
) -> Result<Changed, MemberChangeError> {
    if change == RoleChange::Deactivate && actor.user_id == Some(user_id) {
        return Err(MemberChangeError::Yourself);
    }
    let txn = crate::db::write_transaction(db).await?;
    let (before, after) = users::change_role(&txn, site_id, user_id, change).await?;
    let changed = before != after;
    if changed {
        audit::record(
            &txn,
            site_id,
            actor,
            change.action(),
            &users::audit_subject(&after),
            detail,
            Utc::now(),
        )
        .await?;
    }
    txn.commit().await?;
    let sessions_ended = if change == RoleChange::Deactivate {
        // Also when it was already inactive: nothing of theirs may linger.
        sessions::end_sessions_of_user(db, user_id).await?
    } else {
        0
    };
    if changed {
        log::info!(
            "Member {user_id} was changed ({change:?}) by {}.",
            actor.label
        );
    }
    Ok(Changed {
        user: after,
        changed,
        sessions_ended,
    })
}
