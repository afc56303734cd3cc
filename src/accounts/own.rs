//! A member's own account and data: `/accounts/profile` (name, phone,
//! username; e-mail by confirmation link), `/accounts/sessions` (log out
//! one session or every other one), `/accounts/export` (a JSON download)
//! and `/accounts/delete`.

use actix_session::SessionExt;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tera::Context;

use super::email_change::{self, EmailChangeError};
use super::users::{self, CreateUserError, ProfileUpdate};
use crate::AppState;
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::entities::users::Model as User;
use crate::error::{AppError, AppResult};
use crate::web::auth::{MaybeUser, Member};
use crate::web::client::browser_family;
use crate::web::forms::{FormErrors, check_length};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::sessions;
use crate::web::sites::CurrentSite;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/accounts/profile")
            .route(page::get().to(profile_page))
            .route(web::post().to(save_profile)),
    )
    .service(web::resource("/accounts/profile/email").route(web::post().to(change_email)))
    // Before `{token}`, which would match it too.
    .service(web::resource("/accounts/profile/email/confirm").route(web::post().to(confirm_email)))
    .service(web::resource("/accounts/profile/email/{token}").route(page::get().to(email_link)))
    .service(web::resource("/accounts/sessions").route(page::get().to(sessions_page)))
    .service(web::resource("/accounts/sessions/end").route(web::post().to(end_session)))
    .service(web::resource("/accounts/sessions/end-others").route(web::post().to(end_others)))
    .service(
        web::resource("/accounts/export")
            .route(page::get().to(export_page))
            .route(web::post().to(export_download)),
    )
    .configure(super::delete::routes);
}

/// The member's row as it is now (the session's copy may be a request old).
pub(super) async fn own_row(state: &AppState, member: &Member) -> AppResult<User> {
    users::find(&state.db, member.0.site_id, member.0.id)
        .await?
        .ok_or_else(|| AppError::LoginRequired {
            next: "/".to_owned(),
        })
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct ProfileForm {
    username: String,
    first_name: String,
    last_name: String,
    phone: String,
}

impl ProfileForm {
    fn of(user: &User) -> Self {
        Self {
            username: user.username.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            phone: user.phone.clone(),
        }
    }

    fn check(&self) -> Result<ProfileUpdate, FormErrors> {
        let mut errors = FormErrors::default();
        let username = users::validate_username(&self.username)
            .map_err(|problem| errors.add("username", problem))
            .unwrap_or_default();
        check_length(
            &mut errors,
            "first_name",
            "The first name",
            &self.first_name,
            150,
        );
        check_length(
            &mut errors,
            "last_name",
            "The last name",
            &self.last_name,
            150,
        );
        check_length(&mut errors, "phone", "The phone number", &self.phone, 50);
        let phone = self.phone.trim();
        if !phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            errors.add(
                "phone",
                "Use only digits, spaces and + - ( ) . in a phone number.",
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProfileUpdate {
            username,
            first_name: self.first_name.trim().to_owned(),
            last_name: self.last_name.trim().to_owned(),
            phone: phone.to_owned(),
        })
    }
}

fn render_profile(
    page: &Page,
    user: &User,
    form: &ProfileForm,
    new_email: &str,
    errors: &FormErrors,
) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("form", form);
    context.insert("email", &user.email);
    context.insert("new_email", new_email);
    context.insert("valid_hours", &email_change::VALID_FOR_HOURS);
    page.render_form("accounts/profile.html", context, errors)
}

async fn profile_page(
    page: Page,
    state: web::Data<AppState>,
    member: Member,
) -> AppResult<HttpResponse> {
    let user = own_row(&state, &member).await?;
    render_profile(
        &page,
        &user,
        &ProfileForm::of(&user),
        "",
        &FormErrors::default(),
    )
}

async fn save_profile(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    member: Member,
    form: web::Form<ProfileForm>,
) -> AppResult<HttpResponse> {
    let user = own_row(&state, &member).await?;
    let update = match form.check() {
        Ok(update) => update,
        Err(errors) => return render_profile(&page, &user, &form, "", &errors),
    };
    match users::update_profile(&state.db, user.clone(), update).await {
        Ok(_) => {
            flash(&req, FlashLevel::Success, "Your profile was saved.");
            Ok(see_other("/accounts/profile"))
        }
        Err(CreateUserError::Db(err)) => Err(err.into()),
        Err(taken) => {
            let mut errors = FormErrors::default();
            errors.add("username", taken.to_string());
            render_profile(&page, &user, &form, "", &errors)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmailForm {
    new_email: String,
}

async fn change_email(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    member: Member,
    site: CurrentSite,
    form: web::Form<EmailForm>,
) -> AppResult<HttpResponse> {
    let user = own_row(&state, &member).await?;
    let mut errors = FormErrors::default();
    match EmailAddress::parse(&form.new_email) {
        Err(problem) => errors.add("new_email", problem.to_string()),
        Ok(email) => match email_change::request(&state, &site.0, &user, &email).await {
            Ok(()) => {
                let message = format!(
                    "We sent a link to {}. Your address changes when you open it.",
                    email.as_str()
                );
                flash(&req, FlashLevel::Success, message);
                return Ok(see_other("/accounts/profile"));
            }
            Err(EmailChangeError::Db(err)) => return Err(err.into()),
            Err(EmailChangeError::Mail(err)) => return Err(err.into()),
            Err(refused) => errors.add("new_email", refused.to_string()),
        },
    }
    let typed: String = form.new_email.chars().take(254).collect();
    render_profile(&page, &user, &ProfileForm::of(&user), &typed, &errors)
}

fn private(mut response: HttpResponse) -> HttpResponse {
    use actix_web::http::header::{CACHE_CONTROL, HeaderValue, REFERRER_POLICY};
    let headers = response.headers_mut();
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn render_email_invalid(page: &Page, err: &EmailChangeError) -> AppResult<HttpResponse> {
    let status = match err {
        EmailChangeError::Taken => StatusCode::CONFLICT,
        _ => StatusCode::GONE,
    };
    let mut context = Context::new();
    context.insert("message", &err.to_string());
    page.render_with_status(status, "accounts/email_invalid.html", context)
        .map(private)
}

/// The link from the mail: a page with a button; a GET changes nothing
/// (mail scanners open links too).
async fn email_link(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    token: web::Path<String>,
) -> AppResult<HttpResponse> {
    let Some(change) = email_change::find_usable(&state.db, &site.0, &token, Utc::now()).await?
    else {
        return render_email_invalid(&page, &EmailChangeError::Unusable);
    };
    let mut context = Context::new();
    context.insert("token", token.as_str());
    context.insert("new_email", &change.new_email);
    page.render("accounts/email_confirm.html", context)
        .map(private)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfirmForm {
    token: String,
}

async fn confirm_email(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    user: MaybeUser,
    form: web::Form<ConfirmForm>,
) -> AppResult<HttpResponse> {
    match email_change::confirm(&state, &site.0, form.token.trim(), Utc::now()).await {
        Ok(changed) => {
            let message = format!("Your e-mail address is now {}.", changed.email);
            flash(&req, FlashLevel::Success, message);
            let target = match user.0 {
                Some(user) if user.id == changed.id => "/accounts/profile",
                _ => "/",
            };
            Ok(see_other(target))
        }
        Err(EmailChangeError::Db(err)) => Err(err.into()),
        Err(EmailChangeError::Mail(err)) => Err(err.into()),
        Err(refused) => render_email_invalid(&page, &refused),
    }
}

#[derive(Serialize)]
struct SessionRow {
    id: String,
    current: bool,
    started: String,
    last_seen: String,
    browser: String,
    address: String,
}

async fn sessions_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    member: Member,
) -> AppResult<HttpResponse> {
    let current = sessions::current_id(&req.get_session());
    let when = |at: Option<chrono::DateTime<Utc>>| {
        at.map_or_else(String::new, |at| state.zone().format(at, DateStyle::Stamp))
    };
    let rows: Vec<SessionRow> = sessions::of_user(&state.db, member.0.id, Utc::now())
        .await?
        .into_iter()
        .map(|row| SessionRow {
            current: current.as_deref() == Some(row.id.as_str()),
            started: when(row.started_at),
            last_seen: when(row.last_seen_at),
            browser: browser_family(&row.user_agent),
            address: row.client_ip,
            id: row.id,
        })
        .collect();
    let others = rows.iter().filter(|row| !row.current).count();
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("others", &others);
    page.render("accounts/sessions.html", context)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndForm {
    session: String,
}

async fn end_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    member: Member,
    form: web::Form<EndForm>,
) -> AppResult<HttpResponse> {
    let current = sessions::current_id(&req.get_session());
    if current.as_deref() == Some(form.session.as_str()) {
        flash(
            &req,
            FlashLevel::Info,
            "That is this session: use Log out at the top of the page to end it.",
        );
    } else if sessions::end_session(&state.db, member.0.id, &form.session).await? {
        flash(&req, FlashLevel::Success, "That session was logged out.");
    } else {
        flash(&req, FlashLevel::Info, "That session had already ended.");
    }
    Ok(see_other("/accounts/sessions"))
}

async fn end_others(
    req: HttpRequest,
    state: web::Data<AppState>,
    member: Member,
) -> AppResult<HttpResponse> {
    let Some(current) = sessions::current_id(&req.get_session()) else {
        flash(&req, FlashLevel::Error, "Reload the page and try again.");
        return Ok(see_other("/accounts/sessions"));
    };
    let ended = sessions::end_other_sessions(&state.db, member.0.id, &current).await?;
    let message = match ended {
        0 => "You were not logged in anywhere else.".to_owned(),
        1 => "1 other session was logged out.".to_owned(),
        n => format!("{n} other sessions were logged out."),
    };
    flash(&req, FlashLevel::Success, message);
    Ok(see_other("/accounts/sessions"))
}

async fn export_page(page: Page, _member: Member) -> AppResult<HttpResponse> {
    page.render("accounts/export.html", Context::new())
}

async fn export_download(
    req: HttpRequest,
    state: web::Data<AppState>,
    site: CurrentSite,
    member: Member,
) -> AppResult<HttpResponse> {
    let user = own_row(&state, &member).await?;
    let current = sessions::current_id(&req.get_session());
    let export =
        super::export::export(&state, &site.0, &user, current.as_deref(), Utc::now()).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(anyhow::Error::from)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"gatehouse-account-{}.json\"",
                user.id
            ),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}
