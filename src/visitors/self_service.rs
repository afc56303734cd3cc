//! "Request access": self-service visitor passes (django-visitor-pass 0.4+),
//! done better. A route guarded with `VisitorGuard::scope(S).self_service()`
//! sends whoever it turns away (on a GET) to `/visitors/request`, carrying
//! the scope and the page asked for, vouched for by an HMAC so that no other
//! scope can be asked for by editing the address. Nothing is written for a
//! turned-away request (the old app made a visitor row for each, bots
//! included). The form takes a name and an e-mail address and mails a link
//! for the scope to that address, so the pass works only for whoever reads
//! that mailbox (the old app activated it at once, proving nothing). The
//! link leads back to the page asked for. Requests are limited per client
//! address and per e-mail address with the attempts machinery.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tera::Context;

use super::tokens::{self, token_keys, without_token};
use super::{NewVisitor, Scope};
use crate::AppState;
use crate::attempts::{self, Admission, Attempt, Kind, Limit, Outcome, Per};
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::error::{AppError, AppResult};
use crate::mail::Mail;
use crate::web::auth::safe_next;
use crate::web::client::client_ip;
use crate::web::forms::{FormErrors, check_length};
use crate::web::page::{self, Page, see_other};
use crate::web::sites::CurrentSite;

/// How long a self-service link works: it is mailed to be used at once.
const LINK_VALID_HOURS: i64 = 24;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/visitors/request")
            .route(page::get().to(request_page))
            .route(web::post().to(request)),
    )
    .route("/visitors/request/sent", page::get().to(sent));
}

fn mac(state: &AppState, scope: &str, next: &str) -> String {
    state
        .keys
        .self_service_mac(format!("{scope}\0{next}").as_bytes())
}

/// Where the guard sends someone it turns away from `next` (a local path
/// with its query, the token removed) on a route of `scope`.
pub fn request_url(state: &AppState, scope: &Scope, req: &HttpRequest) -> String {
    let keys = token_keys(&state.settings.visitors.querystring_key);
    let next = safe_next(Some(&without_token(req.path(), req.query_string(), &keys)))
        .unwrap_or_else(|| "/".to_owned());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("scope", scope.as_str())
        .append_pair("next", &next)
        .append_pair("sig", &mac(state, scope.as_str(), &next))
        .finish();
    format!("/visitors/request?{query}")
}

/// What the form carries besides the person's details.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Offer {
    scope: String,
    next: String,
    sig: String,
}

impl Offer {
    /// The scope and page, when a guard did offer them.
    fn check(&self, state: &AppState) -> AppResult<(Scope, String)> {
        let expected = mac(state, &self.scope, &self.next);
        let genuine: bool = expected.as_bytes().ct_eq(self.sig.as_bytes()).into();
        let scope = Scope::parse(&self.scope).ok().filter(|_| genuine);
        match (scope, safe_next(Some(&self.next))) {
            (Some(scope), Some(next)) => Ok((scope, next)),
            _ => Err(AppError::BadRequest(
                "This request-access link is not valid. Go back to the page you wanted and \
                 follow its link again."
                    .into(),
            )),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RequestForm {
    #[serde(flatten)]
    offer: Offer,
    first_name: String,
    last_name: String,
    email: String,
}

fn render(page: &Page, form: &RequestForm, errors: &FormErrors) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("scope", &form.offer.scope);
    context.insert("next", &form.offer.next);
    context.insert("sig", &form.offer.sig);
    context.insert("first_name", &form.first_name);
    context.insert("last_name", &form.last_name);
    context.insert("email", &form.email);
    let next: String = url::form_urlencoded::byte_serialize(form.offer.next.as_bytes()).collect();
    context.insert("login_url", &format!("/accounts/login?next={next}"));
    page.render_form("visitors/request.html", context, errors)
}

async fn request_page(
    page: Page,
    state: web::Data<AppState>,
    offer: web::Query<Offer>,
) -> AppResult<HttpResponse> {
    offer.check(&state)?;
    let form = RequestForm {
        offer: offer.into_inner(),
        ..RequestForm::default()
    };
    render(&page, &form, &FormErrors::default())
}

/// The person's details, checked; errors keyed by field.
fn check_details(form: &RequestForm) -> Result<EmailAddress, FormErrors> {
    let mut errors = FormErrors::default();
    for (field, label, value) in [
        ("first_name", "Your first name", &form.first_name),
        ("last_name", "Your last name", &form.last_name),
    ] {
        if value.trim().is_empty() {
            errors.add(field, format!("Enter {}.", label.to_lowercase()));
        } else if value.chars().any(char::is_control) {
            errors.add(field, format!("{label} must be a single line of text."));
        }
        check_length(&mut errors, field, label, value.trim(), 150);
    }
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) if crate::mail::can_address(&email) => Some(email),
        Ok(_) => {
            errors.add(
                "email",
                crate::email_address::EmailError::Invalid.to_string(),
            );
            None
        }
        Err(err) => {
            errors.add("email", err.to_string());
            None
        }
    };
    match email {
        Some(email) if errors.is_empty() => Ok(email),
        _ => Err(errors),
    }
}

async fn request(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    form: web::Form<RequestForm>,
) -> AppResult<HttpResponse> {
    let (scope, next) = form.offer.check(&state)?;
    let email = match check_details(&form) {
        Ok(email) => email,
        Err(errors) => return render(&page, &form, &errors),
    };
    let asked = Asked {
        scope,
        next,
        first_name: form.first_name.trim().to_owned(),
        last_name: form.last_name.trim().to_owned(),
        email,
        ip: client_ip(&req, &state.settings.server.trusted_proxies),
    };
    issue(&state, &site.0, asked).await?;
    Ok(see_other("/visitors/request/sent"))
}

/// A checked request for a pass.
pub struct Asked {
    pub scope: Scope,
    pub next: String,
    pub first_name: String,
    pub last_name: String,
    pub email: EmailAddress,
    pub ip: String,
}

/// Counts the request against the limits (429 over one), then makes the
/// pass and queues its link in one transaction.
/// Passes asked per e-mail address and per client address, per hour.
fn limits(settings: &crate::settings::VisitorSettings) -> [Limit; 2] {
    let hour = Duration::hours(1);
    [
        Limit {
            per: Per::Account,
            kinds: &[Kind::VisitorPass],
            max: settings.self_service_per_email_per_hour,
            window: hour,
        },
        Limit {
            per: Per::Address,
            kinds: &[Kind::VisitorPass],
            max: settings.self_service_per_address_per_hour,
            window: hour,
        },
    ]
}

pub async fn issue(
    state: &AppState,
    site: &crate::web::sites::Site,
    asked: Asked,
) -> AppResult<()> {
    let settings = &state.settings.visitors;
    let limits = limits(settings);
    let attempt = Attempt {
        kind: Kind::VisitorPass,
        site_id: site.id,
        ip: asked.ip.clone(),
        account: Some(format!("email:{}", asked.email.as_str())),
    };
    let now = Utc::now();
    let ticket = match attempts::admit(&state.db, &state.lane, &attempt, &limits, now).await? {
        Admission::Refused { retry_after } => {
            return Err(AppError::TooManyAttempts {
                retry_after,
                zone: state.zone(),
            });
        }
        Admission::Admitted { ticket, .. } => ticket,
    };
    let txn = crate::db::write_transaction(&state.db).await?;
    let (visitor, token) = super::create(
        &txn,
        NewVisitor {
            site_id: site.id,
            scope: asked.scope,
            first_name: asked.first_name,
            last_name: asked.last_name,
            email: asked.email.clone(),
            context: Some(serde_json::json!({ "self-service": true, "requested": asked.next })),
            valid_for: Duration::hours(LINK_VALID_HOURS),
            session_expiry_secs: settings.session_expiry_secs.into(),
            created_by: None,
        },
    )
    .await?;
    let link = tokens::tokenise(
        &format!("{}{}", state.base_url_of(site), asked.next),
        &settings.querystring_key,
        &token,
    );
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("name", &super::full_name(&visitor));
    context.insert("link", &link);
    context.insert(
        "valid_until",
        &state.zone().format(visitor.expires_at, DateStyle::Stamp),
    );
    let mail = Mail::from_template(&state.templates, "visitor_pass", &context)?;
    state
        .mailer
        .queue_from_site(&txn, site, &asked.email, &mail, None, now)
        .await?;
    txn.commit().await?;
    ticket.resolve(&state.db, Outcome::Used).await?;
    state.mailer.wake();
    log::info!(
        "Visitor {} asked for a pass for scope {}.",
        visitor.id,
        visitor.scope
    );
    Ok(())
}

async fn sent(page: Page) -> AppResult<HttpResponse> {
    page.render("visitors/request_sent.html", Context::new())
}
