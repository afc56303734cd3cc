//! `/invites/send` (staff): the form, and the page that shows a new code
//! once. Thin: check the form, call `issue`, redirect.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::issue::{self, IfOpen, IssueError, Request};
use super::manage;
use super::redeem::Rules;
use super::shown;
use crate::AppState;
use crate::audit::Actor;
use crate::dates::DateStyle;
use crate::entities::{invites, mail_outbox};
use crate::error::{AppError, AppResult};
use crate::mail::delivery;
use crate::web::auth::Staff;
use crate::web::forms::FormErrors;
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::sites::CurrentSite;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/invites/sent").route(page::get().to(sent_page)));
}

/// `/invites/send`, mounted by the route map behind the staff guard.
pub fn send_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("")
            .route(page::get().to(send_page))
            .route(web::post().to(send)),
    );
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct SendForm {
    email: String,
    name: String,
    phone: String,
    /// "yes" once staff confirmed that open invitations may be replaced.
    replace: String,
}

/// An open invitation of the typed address, for the "send a fresh code?" question.
#[derive(Serialize)]
struct OpenInvite {
    id: i64,
    state: manage::InviteState,
    created: String,
    first_used: Option<String>,
}

fn render_send(
    page: &Page,
    state: &AppState,
    status: StatusCode,
    form: &SendForm,
    errors: &FormErrors,
    open: &[OpenInvite],
) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    // Shown back as typed, within reason.
    let clip = |value: &str, max: usize| value.chars().take(max).collect::<String>();
    context.insert("email", &clip(&form.email, 300));
    context.insert(
        "email_query",
        &crate::web::error_pages::urlencode(form.email.trim()),
    );
    context.insert("name", &clip(&form.name, 200));
    context.insert("phone", &clip(&form.phone, 60));
    context.insert("errors", errors);
    context.insert("open_invites", open);
    context.insert(
        "usage_window_days",
        &state.settings.invites.usage_window_days,
    );
    context.insert("expiry_days", &state.settings.invites.expiry_days);
    context.insert("mail_delivers", &state.mailer.delivers());
    page.render_with_status(status, "invites/send.html", context)
}

async fn send_page(
    page: Page,
    state: web::Data<AppState>,
    _staff: Staff,
) -> AppResult<HttpResponse> {
    render_send(
        &page,
        &state,
        StatusCode::OK,
        &SendForm::default(),
        &FormErrors::default(),
        &[],
    )
}

async fn send(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    form: web::Form<SendForm>,
) -> AppResult<HttpResponse> {
    let invitee = match super::check_invitee(&form.email, &form.name, &form.phone) {
        Ok(invitee) => invitee,
        Err(errors) => {
            return render_send(
                &page,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                &errors,
                &[],
            );
        }
    };
    let actor = Actor::staff(&staff.0);
    let result = issue::issue(
        &state,
        Request {
            site: &site.0,
            email: invitee.email,
            name: invitee.name,
            phone: invitee.phone,
            actor: &actor,
            send_mail: true,
            if_open: if form.replace == "yes" {
                IfOpen::Replace
            } else {
                IfOpen::Ask
            },
            replaces: None,
        },
    )
    .await;
    match result {
        Ok(issued) => {
            shown::remember(&req, &state.keys, staff.0.id, &issued, false)?;
            Ok(see_other("/invites/sent"))
        }
        Err(IssueError::OpenInvite(open)) => {
            let open = describe_open(&state, &open);
            // Not done yet: 409 tells scripts so; people see the question.
            render_send(
                &page,
                &state,
                StatusCode::CONFLICT,
                &form,
                &FormErrors::default(),
                &open,
            )
        }
        Err(err) => Err(err.into()),
    }
}

/// The open invitations of an address, as the "send a fresh code?" question
/// lists them.
fn describe_open(state: &AppState, open: &[invites::Model]) -> Vec<OpenInvite> {
    let rules = Rules::from(&state.settings.invites);
    let now = chrono::Utc::now();
    open.iter()
        .map(|invite| OpenInvite {
            id: invite.id,
            state: manage::state_of(invite, rules, now),
            created: state.zone().format(invite.created_at, DateStyle::Stamp),
            first_used: invite
                .first_used_at
                .map(|at| state.zone().format(at, DateStyle::Stamp)),
        })
        .collect()
}

async fn sent_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
) -> AppResult<HttpResponse> {
    // A HEAD must not use up the one showing, nor write anything.
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(see_other("/staff/invites"));
    }
    let Some(shown) = shown::take(&req, &state.keys, staff.0.id) else {
        flash(
            &req,
            FlashLevel::Info,
            "A new code is shown only once, right after it is made. To give someone a new \
             code, resend their invitation.",
        );
        return Ok(see_other("/staff/invites"));
    };
    let invite = manage::find(&state.db, site.0.id, shown.invite_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let row = match shown.outbox_id {
        Some(id) => {
            use sea_orm::EntityTrait;
            mail_outbox::Entity::find_by_id(id).one(&state.db).await?
        }
        None => None,
    };
    let notice = delivery::invitation_notice(&state.mailer, row.as_ref());
    let code = super::InviteCode::parse(shown.code()).map_err(|_| AppError::NotFound)?;
    let mut context = Context::new();
    context.insert("invite", &invite_details(&invite));
    context.insert("code", code.as_str());
    context.insert("login_url", &issue::login_link(&state, &site.0, &code));
    context.insert(
        "first_use_by",
        &state
            .zone()
            .format(issue::first_use_by(&state, &invite), DateStyle::Stamp),
    );
    context.insert("expiry_days", &state.settings.invites.expiry_days);
    context.insert("resent", &shown.resent);
    context.insert("mail_state", notice.state);
    context.insert("mail_message", &notice.message);
    page.render("invites/sent.html", context)
}

#[derive(Serialize)]
struct InviteDetails<'a> {
    id: i64,
    email: &'a str,
    name: &'a str,
    phone: &'a str,
}

fn invite_details(invite: &invites::Model) -> InviteDetails<'_> {
    InviteDetails {
        id: invite.id,
        email: &invite.email,
        name: &invite.name,
        phone: &invite.phone,
    }
}
