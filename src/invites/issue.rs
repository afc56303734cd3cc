//! Issuing an invitation (staff page, resend, command line): a new code,
//! the e-mail announcing it queued in the same transaction, and the audit
//! rows. An e-mail address with an open invitation (a code that still
//! works) is not silently given a second one: the caller asks first, and on
//! confirmation the old code is revoked.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use tera::Context;

use super::manage;
use super::redeem::Rules;
use super::{InviteCode, NewInvite};
use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::entities::invites::Model as Invite;
use crate::mail::Mail;
use crate::web::sites::Site;

/// What to do when the address already has an open invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfOpen {
    /// Stop with `IssueError::OpenInvite`, so the caller can ask.
    Ask,
    /// Revoke the open invitations: only the new code works.
    Replace,
}

pub struct Request<'a> {
    pub site: &'a Site,
    pub email: EmailAddress,
    pub name: String,
    pub phone: String,
    pub actor: &'a Actor,
    /// Queue the invitation e-mail (otherwise the caller hands the code over).
    pub send_mail: bool,
    pub if_open: IfOpen,
    /// Resending: this invite is revoked and replaced.
    pub replaces: Option<i64>,
}

/// A new invitation. The code exists only here: show it once and let it go.
pub struct Issued {
    pub invite: Invite,
    pub code: InviteCode,
    pub outbox_id: Option<i64>,
    /// Invites revoked to make way for this one.
    pub revoked: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{} already has an open invitation", .0.first().map_or("", |invite| invite.email.as_str()))]
    OpenInvite(Vec<Invite>),
    #[error("could not render the invitation e-mail: {0}")]
    Template(#[from] tera::Error),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<IssueError> for crate::error::AppError {
    fn from(err: IssueError) -> Self {
        match err {
            IssueError::Db(err) => err.into(),
            other => Self::Internal(other.into()),
        }
    }
}

pub async fn issue(state: &AppState, request: Request<'_>) -> Result<Issued, IssueError> {
    let now = Utc::now();
    let rules = Rules::from(&state.settings.invites);
    let site = request.site;
    let open = manage::find_open(&state.db, site.id, request.email.as_str(), rules, now).await?;
    if !open.is_empty() && request.if_open == IfOpen::Ask {
        return Err(IssueError::OpenInvite(open));
    }
    let mut to_revoke: Vec<i64> = open.iter().map(|invite| invite.id).collect();
    to_revoke.extend(request.replaces.filter(|old| !to_revoke.contains(old)));
    let txn = crate::db::write_transaction(&state.db).await?;
    let (invite, code) = super::create(
        &txn,
        &state.keys,
        site.id,
        state.settings.invites.code_length,
        NewInvite {
            email: request.email.clone(),
            name: request.name,
            phone: request.phone,
            created_by: request.actor.user_id,
            grants_staff: false,
        },
    )
    .await?;
    let revoked = revoke_replaced(&txn, site.id, request.actor, &invite, to_revoke, now).await?;
    let outbox_id = if request.send_mail {
        let replaces_earlier = !revoked.is_empty();
        let mail = invitation_mail(
            state,
            site,
            &invite,
            &code,
            request.actor,
            now,
            replaces_earlier,
        )?;
        let queued = state
            .mailer
            .queue_from_site(&txn, site, &request.email, &mail, Some(invite.id), now)
            .await?;
        Some(queued.id)
    } else {
        None
    };
    record_issued(
        &txn,
        site.id,
        request.actor,
        &invite,
        request.replaces,
        outbox_id,
        now,
    )
    .await?;
    txn.commit().await?;
    if outbox_id.is_some() {
        state.mailer.wake();
    }
    let queued = if outbox_id.is_some() {
        " and its e-mail queued"
    } else {
        ""
    };
    let (id, email, by) = (invite.id, &invite.email, &request.actor.label);
    log::info!("Invitation {id} for {email} was created by {by}{queued}.");
    Ok(Issued {
        invite,
        code,
        outbox_id,
        revoked,
    })
}

/// Revokes the invitations the new one replaces, each with its audit row;
/// returns those that were still open.
async fn revoke_replaced(
    txn: &impl sea_orm::ConnectionTrait,
    site_id: i64,
    actor: &Actor,
    invite: &Invite,
    to_revoke: Vec<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    let mut revoked = Vec::new();
    for old in to_revoke {
        if manage::revoke(txn, old, now).await? {
            let detail = format!("invitation #{old}, replaced by #{}", invite.id);
            audit::record(
                txn,
                site_id,
                actor,
                Action::InviteRevoked,
                &invite.email,
                &detail,
                now,
            )
            .await?;
            revoked.push(old);
        }
    }
    Ok(revoked)
}

/// The audit row saying how the invitation went out: resent, mailed, or
/// handed over without e-mail.
async fn record_issued(
    txn: &impl sea_orm::ConnectionTrait,
    site_id: i64,
    actor: &Actor,
    invite: &Invite,
    replaces: Option<i64>,
    outbox_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (action, detail) = match (replaces, outbox_id) {
        (Some(old), _) => (
            Action::InviteResent,
            format!("invitation #{}, replacing #{old}", invite.id),
        ),
        (None, Some(_)) => (Action::InviteSent, format!("invitation #{}", invite.id)),
        (None, None) => (
            Action::InviteCreated,
            format!("invitation #{}, code handed over without e-mail", invite.id),
        ),
    };
    audit::record(txn, site_id, actor, action, &invite.email, &detail, now).await
}

/// The login link that fills in a code (it never logs in by itself).
pub fn login_link(state: &AppState, site: &Site, code: &InviteCode) -> String {
    format!(
        "{}/accounts/login?code={}",
        state.base_url_of(site),
        code.as_str()
    )
}

/// When the code must first be used.
pub fn first_use_by(state: &AppState, invite: &Invite) -> DateTime<Utc> {
    invite.created_at + Rules::from(&state.settings.invites).usage_window
}

/// `templates/mail/invitation/`: the code, the login link, how long the
/// code is valid, who sent it, and whether it replaces an earlier code.
fn invitation_mail(
    state: &AppState,
    site: &Site,
    invite: &Invite,
    code: &InviteCode,
    actor: &Actor,
    now: DateTime<Utc>,
    replaces_earlier: bool,
) -> tera::Result<Mail> {
    let settings = &state.settings.invites;
    let (first_name, _) = super::split_name(&invite.name);
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("site_url", &format!("{}/", state.base_url_of(site)));
    context.insert("login_url", &login_link(state, site, code));
    context.insert("code", code.as_str());
    context.insert("first_name", &first_name);
    context.insert("inviter", &actor.display_name);
    context.insert("usage_window_days", &settings.usage_window_days);
    context.insert(
        "first_use_by",
        &state
            .zone()
            .format(now + Rules::from(settings).usage_window, DateStyle::Day),
    );
    context.insert("expiry_days", &settings.expiry_days);
    context.insert("replaces_earlier", &replaces_earlier);
    Mail::from_template(&state.templates, "invitation", &context)
}
