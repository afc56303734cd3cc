//! `/accounts/delete`: a member deletes their own account after proving it
//! is them once more — their password, or for an account without one a
//! code of theirs that still works — with the login limits applying (see
//! `erase` for what deletion does).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use tera::Context;

use super::gate;
use super::users::RoleChangeError;
use crate::AppState;
use crate::attempts::{self, Kind, Outcome};
use crate::entities::users::Model as User;
use crate::error::{AppError, AppResult};
use crate::invites::InviteCode;
use crate::invites::manage::code_works;
use crate::invites::redeem::{self, Rules};
use crate::settings::Secret;
use crate::web::auth::{MaybeUser, Member};
use crate::web::forms::FormErrors;
use crate::web::page::{self, Page, see_other};
use crate::web::session::TypedSession;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/accounts/delete")
            .route(page::get().to(delete_page))
            .route(web::post().to(delete_account)),
    )
    .service(web::resource("/accounts/deleted").route(page::get().to(deleted)));
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct DeleteForm {
    password: String,
    code: String,
    confirm: String,
}

fn render(page: &Page, errors: &FormErrors) -> AppResult<HttpResponse> {
    page.render_form("accounts/delete.html", Context::new(), errors)
}

async fn delete_page(page: Page, _member: Member) -> AppResult<HttpResponse> {
    render(&page, &FormErrors::default())
}

/// Whether the password or code typed proves it is the member; counted
/// like a login attempt.
async fn proves_identity(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
    form: &DeleteForm,
    errors: &mut FormErrors,
) -> AppResult<()> {
    let kind = if user.password_hash.is_some() {
        Kind::Password
    } else {
        Kind::Code
    };
    let typed = match kind {
        Kind::Password => &form.password,
        _ => &form.code,
    };
    if typed.trim().is_empty() {
        // Said already by `check_filled_in`.
        return Ok(());
    }
    let account = Some(attempts::account_of_user(user.id));
    let attempt = gate::attempt(req, state, user.site_id, kind, account);
    let (ticket, _) = gate::admit(state, &attempt).await?;
    let proven = match kind {
        Kind::Password => {
            let stored = user.password_hash.as_deref();
            state
                .hasher
                .verify(&Secret::new(typed.as_str()), stored)
                .await
        }
        _ => code_is_theirs(state, user, typed).await?,
    };
    if proven {
        ticket.resolve(&state.db, Outcome::Succeeded).await?;
    } else {
        ticket.resolve(&state.db, Outcome::Failed).await?;
        match kind {
            Kind::Password => errors.add("password", "That is not your password."),
            _ => errors.add(
                "code",
                "That is not a working invitation code of yours. If you have none, set a \
                 password first, then delete your account with it.",
            ),
        }
    }
    Ok(())
}

/// True when `typed` is a code that still logs this member in.
async fn code_is_theirs(state: &AppState, user: &User, typed: &str) -> AppResult<bool> {
    let Ok(code) = InviteCode::parse(typed) else {
        return Ok(false);
    };
    let rules = Rules::from(&state.settings.invites);
    let now = Utc::now();
    let found = redeem::usable(
        &state.db,
        &state.keys,
        user.site_id,
        &code,
        None,
        rules,
        now,
    )
    .await;
    Ok(match found {
        Ok(invite) => invite.user_id == Some(user.id) && code_works(&invite, rules, now),
        Err(redeem::RedeemError::Db(err)) => return Err(err.into()),
        Err(_) => false,
    })
}

/// The form's own mistakes, all at once: nothing typed, the box not ticked.
fn check_filled_in(user: &User, form: &DeleteForm, errors: &mut FormErrors) {
    if user.password_hash.is_some() && form.password.trim().is_empty() {
        errors.add("password", "Enter your password.");
    }
    if user.password_hash.is_none() && form.code.trim().is_empty() {
        errors.add("code", "Enter your invitation code.");
    }
    if form.confirm != "yes" {
        errors.add(
            "confirm",
            "Tick the box to confirm that you want your account deleted.",
        );
    }
}

async fn delete_account(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    member: Member,
    form: web::Form<DeleteForm>,
) -> AppResult<HttpResponse> {
    let user = super::own::own_row(&state, &member).await?;
    let mut errors = FormErrors::default();
    check_filled_in(&user, &form, &mut errors);
    if errors.is_empty() {
        proves_identity(&req, &state, &user, &form, &mut errors).await?;
    }
    if !errors.is_empty() {
        return render(&page, &errors);
    }
    match super::erase::delete_account(&state, &user, Utc::now()).await {
        Ok(()) => {}
        Err(RoleChangeError::Db(err)) => return Err(err.into()),
        Err(RoleChangeError::NotFound) => return Err(AppError::NotFound),
        Err(refused @ RoleChangeError::LastStaff(_)) => {
            errors.add("form", refused.to_string());
            return render(&page, &errors);
        }
    }
    // This browser starts afresh: its session row is gone already.
    TypedSession::of(&req).purge();
    Ok(see_other("/accounts/deleted"))
}

async fn deleted(page: Page, user: MaybeUser) -> AppResult<HttpResponse> {
    if user.0.is_some() {
        return Ok(see_other("/"));
    }
    page.render("accounts/deleted.html", Context::new())
}
