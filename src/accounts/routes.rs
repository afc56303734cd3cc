//! HTTP handlers for `/accounts/...`. Thin: parse the form, call `login` or
//! `users`, render or redirect.

use actix_identity::Identity;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use tera::Context;

use super::gate::{self, Entry};
use super::login::{self, LoggedIn, LoginError};
use super::password_change::{self, Changed, PasswordChange};
use super::{captcha, throttle};
use crate::AppState;
use crate::attempts::{self, Attempt, Kind, Outcome};
use crate::error::AppResult;
use crate::invites::InviteCode;
use crate::invites::codes::CodeFormatError;
use crate::settings::Secret;
use crate::web::auth::{self, MaybeUser, Member, safe_next};
use crate::web::forms::{FormErrors, check_length};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::session::TypedSession;
use crate::web::sites::CurrentSite;
use crate::web::visitor::MaybeVisitor;
use chrono::Utc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/accounts/login")
            .route(page::get().to(login_page))
            .route(web::post().to(password_login)),
    )
    .service(web::resource("/accounts/login/code").route(web::post().to(code_login)))
    .service(web::resource("/accounts/logout").route(web::post().to(logout)))
    .service(web::resource("/accounts/logged-out").route(page::get().to(logged_out)))
    .service(
        web::resource("/accounts/password")
            .route(page::get().to(password_page))
            .route(web::post().to(change_password)),
    )
    .service(
        web::resource("/accounts/password/reset")
            .route(page::get().to(reset_request_page))
            .route(web::post().to(reset_request)),
    )
    .service(web::resource("/accounts/password/reset/sent").route(page::get().to(reset_sent)))
    .service(web::resource("/accounts/password/reset/done").route(page::get().to(reset_done)))
    // Before `{token}`, which would match it too.
    .service(
        web::resource(SET_PASSWORD_PATH)
            .route(page::get().to(reset_page))
            .route(web::post().to(reset_password)),
    )
    .service(
        web::resource("/accounts/password/reset/{token}").route(page::get().to(open_reset_link)),
    )
    .configure(super::own::routes);
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginQuery {
    next: String,
    code: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PasswordLoginForm {
    username: String,
    password: String,
    captcha: String,
    next: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CodeLoginForm {
    code: String,
    captcha: String,
    next: String,
}

/// What the login page shows; the password itself is never sent back.
#[derive(Default)]
struct LoginPage<'a> {
    username: &'a str,
    code: &'a str,
    next: &'a str,
    errors: FormErrors,
    /// Which form the errors belong to: "password" or "code".
    active: &'static str,
    /// Ask a captcha question with the next attempt.
    captcha: bool,
}

const LOGIN_TEMPLATE: &str = "accounts/login.html";

impl LoginPage<'_> {
    /// Nothing typed, no errors and no question: the page every browser
    /// without a session of its own gets, the same for all of them.
    fn is_blank(&self) -> bool {
        self.username.is_empty()
            && self.code.is_empty()
            && self.next.is_empty()
            && self.errors.is_empty()
            && !self.captcha
    }
}

fn login_context(page: &Page, view: &LoginPage<'_>) -> Context {
    let mut context = Context::new();
    context.insert("username", view.username);
    // Shown back as typed, within reason: a code is at most 30 characters.
    context.insert("code", &view.code.chars().take(40).collect::<String>());
    context.insert("next", &safe_next(Some(view.next)).unwrap_or_default());
    context.insert("active", view.active);
    if view.captcha {
        let (question, challenge) = captcha::new_question();
        if let Err(err) = TypedSession::of(page.request()).set_captcha_challenge(challenge) {
            log::warn!("Could not store a captcha challenge: {err}");
        }
        context.insert("captcha_question", &question);
    }
    context
}

fn render_login(page: &Page, view: LoginPage<'_>) -> AppResult<HttpResponse> {
    if view.is_blank() {
        return page.render_plain(LOGIN_TEMPLATE, || {
            let mut context = login_context(page, &view);
            context.insert("errors", &view.errors);
            context
        });
    }
    page.render_form(LOGIN_TEMPLATE, login_context(page, &view), &view.errors)
}

async fn login_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    user: MaybeUser,
    visitor: MaybeVisitor,
    query: web::Query<LoginQuery>,
) -> AppResult<HttpResponse> {
    let session = TypedSession::of(&req);
    // `?code=` only pre-fills the form: a GET never logs anyone in. The code
    // moves into the session and the browser to the same page without it, so
    // it stays out of the history, logs and Referers.
    let link_code = query.code.trim();
    if !link_code.is_empty() {
        // Only an anonymous browser's session (a sealed cookie, no row) keeps
        // it: a member or visitor has no use for it, and a HEAD writes nothing.
        let anonymous = user.0.is_none() && visitor.0.is_none();
        if anonymous && req.method() == actix_web::http::Method::GET {
            let code: String = link_code.chars().take(40).collect();
            if let Err(err) = session.set_login_link_code(code) {
                log::warn!("Could not keep a login link's code for the form: {err}");
            }
        }
        let target = match safe_next(Some(&query.next)) {
            Some(next) => format!(
                "/accounts/login?next={}",
                crate::web::error_pages::urlencode(&next)
            ),
            None => "/accounts/login".to_owned(),
        };
        let mut response = no_referrer(see_other(&target));
        response.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
        return Ok(response);
    }
    let code = session.take_login_link_code().unwrap_or_default();
    // The question is on the page whenever the next attempt from this
    // address will need it.
    let attempt = gate::attempt(&req, &state, site.0.id, Kind::Password, None);
    let captcha = gate::captcha_for_page(&state, &attempt).await?;
    render_login(
        &page,
        LoginPage {
            code: &code,
            next: &query.next,
            captcha,
            ..Default::default()
        },
    )
    .map(no_referrer)
}

/// The form's error and whether the page asks the captcha, after an attempt
/// that the gate sent back or that was judged a failure.
async fn after_attempt(
    state: &AppState,
    attempt: &Attempt,
    entry: Entry,
    judged: impl AsyncFnOnce() -> Result<LoggedIn, LoginError>,
) -> AppResult<Result<LoggedIn, (&'static str, String, bool)>> {
    let ticket = match entry {
        Entry::AskCaptcha(message) => return Ok(Err(("captcha", message.to_owned(), true))),
        Entry::Judge(ticket) => ticket,
    };
    match judged().await {
        Ok(mut logged_in) => {
            let outcome = ticket.resolution(state.db.get_database_backend(), Outcome::Succeeded);
            let writes = logged_in.login_record.take().into_iter().chain([outcome]);
            crate::web::sessions::write_with_new_row(&state.db, &state.lane, writes).await?;
            Ok(Ok(logged_in))
        }
        Err(LoginError::Db(err)) => {
            // Counted as a failure: an error must not be a way around the limits.
            if let Err(resolve_err) = ticket.resolve(&state.db, Outcome::Failed).await {
                log::warn!("Could not mark a login attempt: {resolve_err}");
            }
            Err(err.into())
        }
        Err(err) => {
            ticket.resolve(&state.db, Outcome::Failed).await?;
            let captcha = gate::captcha_for_next(state, attempt).await?;
            let field = if attempt.kind == Kind::Code && attempt.account.is_none() {
                "code"
            } else {
                "form"
            };
            Ok(Err((field, err.to_string(), captcha)))
        }
    }
}

async fn password_login(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    form: web::Form<PasswordLoginForm>,
) -> AppResult<HttpResponse> {
    let mut errors = FormErrors::default();
    check_length(&mut errors, "username", "The username", &form.username, 254);
    if form.username.trim().is_empty() {
        errors.add("username", "Enter your username or e-mail address.");
    }
    if form.password.is_empty() {
        errors.add("password", "Enter your password.");
    }
    // The invite e-mail with its code in place of a password is a code
    // guess, and meets the hourly cap on those too.
    let kind = if InviteCode::parse(&form.password).is_ok() {
        Kind::Code
    } else {
        Kind::Password
    };
    let mut attempt = gate::attempt(&req, &state, site.0.id, kind, None);
    let captcha = if errors.is_empty() {
        let session = TypedSession::of(&req);
        let (entry, user) = gate::enter_by_name(
            &state,
            &mut attempt,
            &form.username,
            &session,
            &form.captcha,
        )
        .await?;
        let password = Secret::new(form.password.as_str());
        let outcome = after_attempt(&state, &attempt, entry, async || {
            login::with_password(&state, site.0.id, &form.username, user, &password).await
        })
        .await?;
        match outcome {
            Ok(logged_in) => return finish_login(&req, &site, logged_in, &form.next),
            Err((field, message, ask)) => {
                errors.add(field, message);
                ask
            }
        }
    } else {
        attempt.account = throttle::account_key(&state.db, site.0.id, &form.username).await?;
        gate::captcha_for_next(&state, &attempt).await?
    };
    render_login(
        &page,
        LoginPage {
            username: &form.username,
            next: &form.next,
            errors,
            active: "password",
            captcha,
            ..Default::default()
        },
    )
}

async fn code_login(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    form: web::Form<CodeLoginForm>,
) -> AppResult<HttpResponse> {
    let mut errors = FormErrors::default();
    let attempt = gate::attempt(&req, &state, site.0.id, Kind::Code, None);
    let captcha = if form.code.trim().is_empty() {
        errors.add("code", CodeFormatError::Empty.to_string());
        gate::captcha_for_next(&state, &attempt).await?
    } else {
        let entry = gate::enter(&state, &attempt, &TypedSession::of(&req), &form.captcha).await?;
        let outcome = after_attempt(&state, &attempt, entry, async || {
            login::with_code(&state, site.0.id, &form.code).await
        })
        .await?;
        match outcome {
            Ok(logged_in) => return finish_login(&req, &site, logged_in, &form.next),
            Err((field, message, ask)) => {
                errors.add(field, message);
                ask
            }
        }
    };
    render_login(
        &page,
        LoginPage {
            code: &form.code,
            next: &form.next,
            errors,
            active: "code",
            captcha,
            ..Default::default()
        },
    )
}

fn finish_login(
    req: &HttpRequest,
    site: &CurrentSite,
    logged_in: LoggedIn,
    next: &str,
) -> AppResult<HttpResponse> {
    auth::log_in(req, logged_in.user.id, logged_in.code)?;
    let name = match logged_in.user.first_name.as_str() {
        "" => logged_in.user.username.as_str(),
        first => first,
    };
    if logged_in.first_use {
        flash(
            req,
            FlashLevel::Success,
            format!(
                "Welcome to {}, {name}! Your account has been created.",
                site.0.name
            ),
        );
    } else {
        flash(req, FlashLevel::Success, format!("Welcome back, {name}."));
    }
    let target = safe_next(Some(next)).unwrap_or_else(|| "/".to_owned());
    Ok(see_other(&target))
}

async fn logout(identity: Option<Identity>, req: HttpRequest) -> HttpResponse {
    match identity {
        Some(identity) => identity.logout(),
        None => TypedSession::of(&req).purge(),
    }
    see_other("/accounts/logged-out")
}

async fn logged_out(page: Page, user: MaybeUser) -> AppResult<HttpResponse> {
    if user.0.is_some() {
        return Ok(see_other("/"));
    }
    page.render("accounts/logged_out.html", Context::new())
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

fn render_password(page: &Page, min_length: usize, errors: FormErrors) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("min_length", &min_length);
    page.render_form("accounts/password.html", context, &errors)
}

async fn password_page(
    page: Page,
    state: web::Data<AppState>,
    _member: Member,
) -> AppResult<HttpResponse> {
    render_password(
        &page,
        state.settings.passwords.min_length,
        FormErrors::default(),
    )
}

async fn change_password(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    member: Member,
    form: web::Form<PasswordForm>,
) -> AppResult<HttpResponse> {
    let member = member.0;
    let attempt = gate::attempt(
        &req,
        &state,
        member.site_id,
        Kind::Password,
        Some(attempts::account_of_user(member.id)),
    );
    let form = form.into_inner();
    let typed = PasswordChange {
        current: Secret::new(form.current_password),
        new: Secret::new(form.new_password),
        confirm: Secret::new(form.confirm_password),
    };
    let changed = match password_change::change_password(&state, &member, attempt, typed).await? {
        Ok(changed) => changed,
        Err(errors) => return render_password(&page, state.settings.passwords.min_length, errors),
    };
    // This session goes on under a new id, now backed by the password rather
    // than by the code it may have used; the account's others have ended.
    let session = TypedSession::of(&req);
    session.forget_code();
    session.renew();
    let message = match changed {
        Changed::Replaced => {
            "Your password has been changed. Other sessions of your account have been logged out."
        }
        Changed::Set => "Your password has been set. From now on you can log in with it.",
    };
    flash(&req, FlashLevel::Success, message);
    Ok(see_other("/"))
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ResetRequestForm {
    login: String,
}

fn render_reset_request(page: &Page, login: &str, errors: FormErrors) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("login", login);
    page.render_form("accounts/reset_request.html", context, &errors)
}

async fn reset_request_page(page: Page) -> AppResult<HttpResponse> {
    render_reset_request(&page, "", FormErrors::default())
}

/// Always the same answer; the link is made and mailed after the response,
/// so neither the page nor its timing tells whether the account exists.
async fn reset_request(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    form: web::Form<ResetRequestForm>,
) -> AppResult<HttpResponse> {
    let login = form.login.trim();
    let mut errors = FormErrors::default();
    if login.is_empty() {
        errors.add("login", "Enter your username or e-mail address.");
    }
    check_length(&mut errors, "login", "The username or e-mail", login, 254);
    if !errors.is_empty() {
        return render_reset_request(&page, &form.login, errors);
    }
    // Each request counts (recorded before it is judged, so a burst cannot
    // slip past), so that nobody can flood an inbox with links.
    let account = throttle::account_key(&state.db, site.0.id, login).await?;
    let attempt = gate::attempt(&req, &state, site.0.id, Kind::Reset, account);
    let (ticket, _) = gate::admit(&state, &attempt).await?;
    ticket.resolve(&state.db, Outcome::Used).await?;
    let (state, site, login) = (state.clone(), site.0.clone(), login.to_owned());
    actix_web::rt::spawn(async move {
        if let Err(err) = super::reset::request(&state, &site, &login).await {
            log::error!("Could not send a password reset link: {err:#}");
        }
    });
    Ok(see_other("/accounts/password/reset/sent"))
}

async fn reset_sent(page: Page) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("valid_minutes", &super::reset::VALID_FOR_MINUTES);
    page.render("accounts/reset_sent.html", context)
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ResetForm {
    new_password: String,
    confirm_password: String,
}

/// For pages whose address holds a secret (a code, a reset token): the
/// browser must not send it on as a Referer.
fn no_referrer(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Kept out of every cache (rendered pages already are: see `Page`).
fn no_store(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Where an opened reset link leads: the token is no longer in the address.
const SET_PASSWORD_PATH: &str = "/accounts/password/reset/set-password";

fn render_reset_invalid(page: &Page) -> AppResult<HttpResponse> {
    page.render_with_status(
        actix_web::http::StatusCode::GONE,
        "accounts/reset_invalid.html",
        Context::new(),
    )
    .map(no_referrer)
}

fn render_reset_form(
    page: &Page,
    min_length: usize,
    errors: FormErrors,
) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("min_length", &min_length);
    let response = page.render_form("accounts/reset_form.html", context, &errors);
    response.map(no_referrer)
}

/// The link from the mail: checks the token, keeps the reset's id in the
/// session and redirects to an address without the token.
async fn open_reset_link(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    token: web::Path<String>,
    session: TypedSession,
) -> AppResult<HttpResponse> {
    let Some((reset, _)) = super::reset::find_usable(&state, &site.0, &token, Utc::now()).await?
    else {
        return render_reset_invalid(&page);
    };
    // HEAD writes nothing (link checkers); GET does.
    if req.method() != actix_web::http::Method::HEAD {
        // A new session id: a session planted in this browser beforehand
        // must not come to hold the right to set this password.
        session.renew();
        session
            .set_password_reset_id(reset.id)
            .map_err(|err| anyhow::anyhow!("could not store the reset in the session: {err}"))?;
    }
    Ok(no_store(no_referrer(see_other(SET_PASSWORD_PATH))))
}

/// The reset whose link this browser opened, with its member, while usable;
/// a reset that is no longer usable is forgotten.
async fn reset_in_session(
    req: &HttpRequest,
    state: &AppState,
    site: &CurrentSite,
    now: chrono::DateTime<Utc>,
) -> AppResult<Option<super::reset::UsableReset>> {
    let session = TypedSession::of(req);
    let Some(id) = session.password_reset_id() else {
        return Ok(None);
    };
    let found = super::reset::find_usable_by_id(state, &site.0, id, now).await?;
    if found.is_none() {
        session.forget_password_reset();
    }
    Ok(found)
}

async fn reset_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
) -> AppResult<HttpResponse> {
    if reset_in_session(&req, &state, &site, Utc::now())
        .await?
        .is_none()
    {
        return render_reset_invalid(&page);
    }
    render_reset_form(
        &page,
        state.settings.passwords.min_length,
        FormErrors::default(),
    )
}

async fn reset_password(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    form: web::Form<ResetForm>,
) -> AppResult<HttpResponse> {
    let now = Utc::now();
    let Some((reset, user)) = reset_in_session(&req, &state, &site, now).await? else {
        return render_reset_invalid(&page);
    };
    let new = Secret::new(form.new_password.as_str());
    let confirm = Secret::new(form.confirm_password.as_str());
    let min_length = state.settings.passwords.min_length;
    let errors =
        super::check_new_password(&new, &confirm, min_length, &[&user.username, &user.email]);
    if !errors.is_empty() {
        return render_reset_form(&page, min_length, errors);
    }
    let hash = state
        .hasher
        .hash(&new)
        .await
        .map_err(|err| anyhow::anyhow!(err))?;
    if !super::reset::complete(&state, &reset, hash, now).await? {
        return render_reset_invalid(&page);
    }
    log::info!("Member {} set a new password with a reset link.", user.id);
    // Whoever this browser was logged in as, it starts afresh.
    TypedSession::of(&req).purge();
    Ok(see_other("/accounts/password/reset/done"))
}

async fn reset_done(page: Page) -> AppResult<HttpResponse> {
    page.render("accounts/reset_done.html", Context::new())
}
