//! Everything Gatehouse holds about a member, as one JSON document (what a
//! data-access request needs): the account, the invitation that made them,
//! the invitations they sent, the reference requests they asked with the
//! answers, their sessions and the audit rows by or about them. Other
//! members appear by role only ("a staff member"), never by name.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::entities::audit_log;
use crate::entities::invites::Model as Invite;
use crate::entities::users::Model as User;
use crate::web::client::browser_family;
use crate::web::sessions;
use crate::web::sites::Site;

/// The export of `user`; `current_session` is marked among their sessions.
pub async fn export(
    state: &AppState,
    site: &Site,
    user: &User,
    current_session: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, DbErr> {
    let invitation = crate::invites::manage::of_member(&state.db, user.id).await?;
    let sent = crate::invites::manage::sent_by(&state.db, user.id).await?;
    let references = crate::references::of_requester(&state.db, user.id).await?;
    let sessions = sessions::of_user(&state.db, user.id, now).await?;
    let audit = audit_rows(state, user).await?;
    Ok(json!({
        "exported_at": now,
        "site": { "domain": site.domain, "name": site.name },
        "account": {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "phone": user.phone,
            "is_staff": user.is_staff,
            "is_active": user.is_active,
            "has_password": user.password_hash.is_some(),
            "created_at": user.created_at,
            "last_login_at": user.last_login_at,
        },
        "invitation": invitation.as_ref().map(invite_json),
        "invitations_sent": sent.iter().map(invite_json).collect::<Vec<_>>(),
        "reference_requests": references.iter().map(|request| json!({
            "id": request.id,
            "referee_name": request.referee_name,
            "referee_email": request.referee_email,
            "message": request.message,
            "state": crate::references::state_of(request, now),
            "answers": request.answers,
            "created_at": request.created_at,
            "link_expires_at": request.link_expires_at,
            "opened_at": request.opened_at,
            "completed_at": request.completed_at,
            "cancelled_at": request.cancelled_at,
        })).collect::<Vec<_>>(),
        "sessions": sessions.iter().map(|session| json!({
            "this_session": Some(session.id.as_str()) == current_session,
            "started_at": session.started_at,
            "last_seen_at": session.last_seen_at,
            "expires_at": session.expires_at,
            "browser": browser_family(&session.user_agent),
            "user_agent": session.user_agent,
            "approximate_address": session.client_ip,
        })).collect::<Vec<_>>(),
        "audit_log": audit,
    }))
}

fn invite_json(invite: &Invite) -> Value {
    json!({
        "id": invite.id,
        "email": invite.email,
        "name": invite.name,
        "phone": invite.phone,
        "created_at": invite.created_at,
        "sent_at": invite.sent_at,
        "first_used_at": invite.first_used_at,
        "revoked_at": invite.revoked_at,
    })
}

#[derive(Serialize)]
struct AuditRow {
    at: DateTime<Utc>,
    action: String,
    /// "you", "the command line", or "a staff member" (never their name).
    by: String,
    subject: String,
    detail: String,
}

/// The audit rows the member made or that are about them.
async fn audit_rows(state: &AppState, user: &User) -> Result<Vec<AuditRow>, DbErr> {
    let rows = audit_log::Entity::find()
        .filter(audit_log::Column::SiteId.eq(user.site_id))
        .filter(
            Condition::any()
                .add(audit_log::Column::ActorId.eq(user.id))
                .add(audit_log::Column::Subject.like(format!("% (#{})", user.id)))
                .add(audit_log::Column::Subject.eq(user.email.clone())),
        )
        .order_by_asc(audit_log::Column::CreatedAt)
        .order_by_asc(audit_log::Column::Id)
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| AuditRow {
            at: row.created_at,
            by: match row.actor_id {
                Some(id) if id == user.id => "you".to_owned(),
                Some(_) => "a staff member".to_owned(),
                None => format!("the {}", row.actor),
            },
            action: crate::audit::Action::label_of(&row.action).to_owned(),
            subject: others_by_id(&row.subject, user.id),
            detail: row.detail,
        })
        .collect())
}

/// A row's subject as the export shows it: another member (`name (#id)`)
/// by their id only.
fn others_by_id(subject: &str, user_id: i64) -> String {
    let id = subject
        .strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" (#"))
        .and_then(|(_, id)| id.parse::<i64>().ok());
    match id {
        Some(id) if id != user_id => format!("member #{id}"),
        _ => subject.to_owned(),
    }
}
