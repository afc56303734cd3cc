//! `/staff/invites`: every invitation of the site with its state, searchable
//! and paginated; revoke (the code stops working, code sessions end) and
//! resend (a fresh code e-mailed, the old one revoked).

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::entities::{invites, users};
use crate::error::{AppError, AppResult};
use crate::invites::issue::{self, IfOpen, Request};
use crate::invites::manage::{self, Filter, InviteState};
use crate::invites::redeem::Rules;
use crate::invites::shown;
use crate::web::auth::Staff;
use crate::web::confirm::{self, ConfirmForm, Question};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::pager;
use crate::web::sites::CurrentSite;
use crate::web::staff_guard::back_to;

const PATH: &str = "/staff/invites";

pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/invites", page::get().to(list))
        .route("/invites/{id}/revoke", web::post().to(revoke))
        .route("/invites/{id}/resend", web::post().to(resend));
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    q: String,
    state: String,
    page: String,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    email: String,
    name: String,
    created_by: String,
    created: String,
    sent: Option<String>,
    /// False for a code handed over without e-mail (command line, first start).
    mailed: bool,
    first_used: Option<String>,
    state: InviteState,
}

#[derive(Serialize)]
struct StateOption {
    value: &'static str,
    label: &'static str,
}

async fn list(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    _staff: Staff,
    site: CurrentSite,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let rules = Rules::from(&state.settings.invites);
    let now = Utc::now();
    let search: String = query.q.trim().chars().take(100).collect();
    let filter = Filter {
        search: search.clone(),
        state: InviteState::parse(&query.state),
    };
    let state_value = filter.state.map_or("", InviteState::as_str);
    let (found, pager) = pager::fetch(
        &state.db,
        manage::list(site.0.id, &filter, rules, now),
        &query.page,
        PATH,
        &[("q", search.as_str()), ("state", state_value)],
    )
    .await?;
    let creators = creator_names(&state, &found).await?;
    let mailed =
        crate::mail::outbox::invites_with_mail(&state.db, found.iter().map(|i| i.id).collect())
            .await?;
    let rows: Vec<Row> = found
        .iter()
        .map(|invite| Row {
            id: invite.id,
            email: invite.email.clone(),
            name: invite.name.clone(),
            created_by: match invite.created_by {
                Some(id) => creators
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("#{id}")),
                None if invite.grants_staff => "first start".into(),
                None => "command line".into(),
            },
            created: state.zone().format(invite.created_at, DateStyle::Stamp),
            sent: invite
                .sent_at
                .map(|at| state.zone().format(at, DateStyle::Stamp)),
            mailed: mailed.contains(&invite.id),
            first_used: invite
                .first_used_at
                .map(|at| state.zone().format(at, DateStyle::Stamp)),
            state: manage::state_of(invite, rules, now),
        })
        .collect();
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("pager", &pager);
    context.insert("q", &search);
    context.insert("state_filter", state_value);
    context.insert(
        "states",
        &InviteState::ALL
            .map(|state| StateOption {
                value: state.as_str(),
                label: label(state),
            })
            .as_slice(),
    );
    context.insert("back", &crate::web::auth::here(&req));
    page.render("staff/invites.html", context)
}

fn label(state: InviteState) -> &'static str {
    match state {
        InviteState::Pending => "Pending",
        InviteState::Used => "Used",
        InviteState::Expired => "Expired",
        InviteState::Revoked => "Revoked",
    }
}

/// Usernames of the staff who made these invites, by id.
async fn creator_names(
    state: &AppState,
    found: &[invites::Model],
) -> Result<HashMap<i64, String>, AppError> {
    let mut ids: Vec<i64> = found
        .iter()
        .filter_map(|invite| invite.created_by)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let users = users::Entity::find()
        .filter(users::Column::Id.is_in(ids))
        .all(&state.db)
        .await?;
    Ok(users
        .into_iter()
        .map(|user| (user.id, user.username))
        .collect())
}

async fn find_invite(state: &AppState, site_id: i64, id: i64) -> AppResult<invites::Model> {
    manage::find(&state.db, site_id, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Who an invitation is for, in a question: "Fred Astaire (fred@example.org)".
fn invitee(invite: &invites::Model) -> String {
    if invite.name.trim().is_empty() {
        invite.email.clone()
    } else {
        format!("{} ({})", invite.name.trim(), invite.email)
    }
}

async fn revoke(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
    form: web::Form<ConfirmForm>,
) -> AppResult<HttpResponse> {
    let invite = find_invite(&state, site.0.id, *id).await?;
    if !form.confirmed() && invite.revoked_at.is_none() {
        let who = invitee(&invite);
        return confirm::ask(
            &page,
            &Question {
                title: format!("Revoke the invitation for {who}?"),
                effect: if invite.first_used_at.is_some() {
                    format!(
                        "Their code stops working at once, and if {who} is logged in with it, they are logged out. This cannot be undone: to let them in again, send a new invitation."
                    )
                } else {
                    format!(
                        "The code sent to {who} stops working at once. This cannot be undone: to let them in later, send a new invitation."
                    )
                },
                action: format!("/staff/invites/{}/revoke", invite.id),
                yes: "Revoke the invitation".into(),
                no: "Keep it".into(),
                back: back_to(&form.back, PATH),
                resend: Vec::new(),
            },
        );
    }
    let now = Utc::now();
    let txn = crate::db::write_transaction(&state.db).await?;
    let revoked = manage::revoke(&txn, invite.id, now).await?;
    if revoked {
        audit::record(
            &txn,
            site.0.id,
            &Actor::staff(&staff.0),
            Action::InviteRevoked,
            &invite.email,
            &format!("invitation #{}", invite.id),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    if revoked {
        log::info!(
            "Invitation {} was revoked by {}.",
            invite.id,
            staff.0.username
        );
        flash(
            &req,
            FlashLevel::Success,
            format!(
                "The invitation for {} was revoked: its code no longer works, and anyone \
                 logged in with it is logged out.",
                invite.email
            ),
        );
    } else {
        flash(
            &req,
            FlashLevel::Info,
            format!("The invitation for {} was already revoked.", invite.email),
        );
    }
    Ok(see_other(&back_to(&form.back, PATH)))
}

async fn resend(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
    form: web::Form<ConfirmForm>,
) -> AppResult<HttpResponse> {
    let invite = find_invite(&state, site.0.id, *id).await?;
    if !form.confirmed() {
        let who = invitee(&invite);
        return confirm::ask(
            &page,
            &Question {
                title: format!("Send {who} a fresh code?"),
                effect: format!(
                    "A new e-mail with a fresh code goes to {}, saying it replaces the earlier one. The earlier code stops working at once, and if {who} is logged in with it, they are logged out.",
                    invite.email
                ),
                action: format!("/staff/invites/{}/resend", invite.id),
                yes: "Send a fresh code".into(),
                no: "Keep the current code".into(),
                back: back_to(&form.back, PATH),
                resend: Vec::new(),
            },
        );
    }
    let email = EmailAddress::parse(&invite.email).map_err(|_| {
        AppError::BadRequest(
            "This invitation's e-mail address is not valid: send a new one.".into(),
        )
    })?;
    let actor = Actor::staff(&staff.0);
    let issued = issue::issue(
        &state,
        Request {
            site: &site.0,
            email,
            name: invite.name.clone(),
            phone: invite.phone.clone(),
            actor: &actor,
            send_mail: true,
            if_open: IfOpen::Replace,
            replaces: Some(invite.id),
        },
    )
    .await?;
    shown::remember(&req, &state.keys, staff.0.id, &issued, true)?;
    Ok(see_other("/invites/sent"))
}
