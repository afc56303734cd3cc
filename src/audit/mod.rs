//! The audit log: one row per staff action (invites sent, revoked, resent;
//! members made staff), written in the same transaction as the action, and
//! listed on `/staff/audit`.

mod staff;

pub use staff::staff_routes;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Select,
};

use crate::entities::audit_log;
use crate::web::auth::CurrentUser;

/// Who did it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    /// Username, or where the action came from when no one was logged in.
    pub label: String,
    /// How mail names them ("Fred Astaire invited you"); `None`: the site.
    pub display_name: Option<String>,
}

impl Actor {
    pub fn staff(user: &CurrentUser) -> Self {
        Self {
            user_id: Some(user.id),
            label: user.username.clone(),
            display_name: Some(user.display_name.clone()),
        }
    }

    pub fn command_line() -> Self {
        Self {
            user_id: None,
            label: "command line".into(),
            display_name: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An invite created and its code e-mailed.
    InviteSent,
    /// An invite created without mail (the code was handed over directly).
    InviteCreated,
    InviteRevoked,
    /// A fresh code for an existing invite (the old one revoked), e-mailed.
    InviteResent,
    UserMadeStaff,
    UserStaffRemoved,
    UserDeactivated,
    UserReactivated,
    /// A member deleted their own account (the row names only the id).
    UserDeleted,
    /// A member confirmed a new e-mail address.
    UserEmailChanged,
    MailRetried,
    /// A visitor link made by staff in the browser.
    VisitorCreated,
    VisitorDeactivated,
    VisitorReactivated,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InviteSent => "invite.sent",
            Self::InviteCreated => "invite.created",
            Self::InviteRevoked => "invite.revoked",
            Self::InviteResent => "invite.resent",
            Self::UserMadeStaff => "user.made_staff",
            Self::UserStaffRemoved => "user.staff_removed",
            Self::UserDeactivated => "user.deactivated",
            Self::UserReactivated => "user.reactivated",
            Self::UserDeleted => "user.deleted",
            Self::UserEmailChanged => "user.email_changed",
            Self::MailRetried => "mail.retried",
            Self::VisitorCreated => "visitor.created",
            Self::VisitorDeactivated => "visitor.deactivated",
            Self::VisitorReactivated => "visitor.reactivated",
        }
    }

    /// What the audit page shows.
    pub fn label_of(stored: &str) -> &str {
        match stored {
            "invite.sent" => "Invitation sent",
            "invite.created" => "Invitation created (not e-mailed)",
            "invite.revoked" => "Invitation revoked",
            "invite.resent" => "Invitation resent with a fresh code",
            "user.made_staff" => "Made a staff member",
            "user.staff_removed" => "No longer a staff member",
            "user.deactivated" => "Account deactivated",
            "user.reactivated" => "Account reactivated",
            "user.deleted" => "Account deleted by its member",
            "user.email_changed" => "E-mail address changed by its member",
            "mail.retried" => "Mail delivery retried",
            "visitor.created" => "Visitor link made",
            "visitor.deactivated" => "Visitor link deactivated",
            "visitor.reactivated" => "Visitor link reactivated",
            other => other,
        }
    }
}

/// Adds a row (pass the transaction of the action it records).
pub async fn record(
    db: &impl ConnectionTrait,
    site_id: i64,
    actor: &Actor,
    action: Action,
    subject: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        site_id: Set(site_id),
        actor_id: Set(actor.user_id),
        actor: Set(actor.label.clone()),
        action: Set(action.as_str().to_owned()),
        subject: Set(subject.to_owned()),
        detail: Set(detail.to_owned()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Removes rows older than `cutoff` (for `purge`, after
/// `audit.retention_days`); with `dry_run` only counts them.
pub async fn delete_older_than(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    let old = audit_log::Column::CreatedAt.lt(cutoff);
    if dry_run {
        return audit_log::Entity::find().filter(old).count(db).await;
    }
    Ok(audit_log::Entity::delete_many()
        .filter(old)
        .exec(db)
        .await?
        .rows_affected)
}

/// A site's log, newest first (a query, to be paged).
pub fn newest_first(site_id: i64) -> Select<audit_log::Entity> {
    audit_log::Entity::find()
        .filter(audit_log::Column::SiteId.eq(site_id))
        .order_by_desc(audit_log::Column::CreatedAt)
        .order_by_desc(audit_log::Column::Id)
}
