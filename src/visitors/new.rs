//! `/staff/visitors/new`: staff make a visitor link in the browser. The link
//! is shown once (post/redirect/get, sealed in the session meanwhile, as
//! new invitation codes are) and, if asked, e-mailed through the outbox.
//! The making is recorded in the audit log.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{NewVisitor, Scope, full_name, tokens};
use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::entities::visitors;
use crate::error::{AppError, AppResult};
use crate::mail::Mail;
use crate::web::auth::Staff;
use crate::web::forms::{FormErrors, check_length};
use crate::web::page::{FlashLevel, Page, flash, see_other};
use crate::web::session::TypedSession;
use crate::web::sites::CurrentSite;

/// The scope every site serves: the demo page.
const DEMO_SCOPE: &str = "demo";
/// Longest link lifetime staff may choose, in days.
const MAX_LINK_DAYS: u32 = 365;
/// How long the visitor's session lasts after the link is used: the choices.
pub const SESSION_CHOICES: [(i64, &str); 5] = [
    (0, "Until the browser closes"),
    (3_600, "An hour"),
    (86_400, "A day"),
    (604_800, "A week"),
    (2_592_000, "30 days"),
];

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct NewForm {
    scope: String,
    email: String,
    first_name: String,
    last_name: String,
    /// Days the link works.
    link_days: String,
    /// Seconds, one of `SESSION_CHOICES`.
    session_secs: String,
    /// Page the link opens.
    path: String,
    /// `key: value` lines.
    context: String,
    /// "yes": e-mail the link to the visitor.
    send_mail: String,
}

/// A form that passed its checks.
struct Checked {
    scope: Scope,
    email: EmailAddress,
    link_days: u32,
    session_secs: i64,
    path: String,
    context: Option<serde_json::Value>,
}

/// `key: value` lines as a JSON object of strings; blank lines are skipped.
pub fn parse_context(text: &str) -> Result<Option<serde_json::Value>, String> {
    let mut map = serde_json::Map::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "Line {} has no colon: write each detail as \"name: value\".",
                n + 1
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("Line {} has no name before its colon.", n + 1));
        }
        map.insert(key.to_owned(), value.trim().into());
    }
    Ok((!map.is_empty()).then_some(serde_json::Value::Object(map)))
}

fn check(form: &NewForm) -> Result<Checked, FormErrors> {
    let mut errors = FormErrors::default();
    let scope = Scope::parse(form.scope.trim()).map_err(|_| {
        errors.add(
            "scope",
            "Choose a scope, or type one in lower-case letters, digits, - and _.",
        );
    });
    let email = EmailAddress::parse(&form.email).map_err(|err| {
        errors.add(
            "email",
            format!("Enter the visitor's e-mail address: {err}."),
        )
    });
    check_length(
        &mut errors,
        "first_name",
        "The first name",
        &form.first_name,
        150,
    );
    check_length(
        &mut errors,
        "last_name",
        "The last name",
        &form.last_name,
        150,
    );
    let link_days = match form.link_days.trim().parse::<u32>() {
        Ok(days) if (1..=MAX_LINK_DAYS).contains(&days) => days,
        _ => {
            errors.add(
                "link_days",
                format!("Enter a number of days from 1 to {MAX_LINK_DAYS}."),
            );
            0
        }
    };
    let session_secs = form
        .session_secs
        .parse::<i64>()
        .ok()
        .filter(|secs| SESSION_CHOICES.iter().any(|(choice, _)| choice == secs));
    if session_secs.is_none() {
        errors.add("session_secs", "Choose how long the visit lasts.");
    }
    let path = match form.path.trim() {
        "" => default_path(form.scope.trim()).to_owned(),
        typed => typed.to_owned(),
    };
    if crate::web::auth::safe_next(Some(&path)).is_none() {
        errors.add("path", "Enter a page of this site, starting with /.");
    }
    let context = parse_context(&form.context).map_err(|err| errors.add("context", err));
    check_length(&mut errors, "context", "The context", &form.context, 4000);
    match (scope, email, session_secs, context) {
        (Ok(scope), Ok(email), Some(session_secs), Ok(context)) if errors.is_empty() => {
            Ok(Checked {
                scope,
                email,
                link_days,
                session_secs,
                path,
                context,
            })
        }
        _ => Err(errors),
    }
}

fn default_path(scope: &str) -> &'static str {
    if scope == DEMO_SCOPE {
        "/visitors/demo"
    } else {
        "/"
    }
}

/// The scopes to offer: the demo's and every scope a link was made for.
async fn known_scopes(state: &AppState, site_id: i64) -> AppResult<Vec<String>> {
    let mut scopes: Vec<String> = visitors::Entity::find()
        .select_only()
        .column(visitors::Column::Scope)
        .distinct()
        .filter(visitors::Column::SiteId.eq(site_id))
        .order_by_asc(visitors::Column::Scope)
        .into_tuple()
        .all(&state.db)
        .await?;
    if !scopes.iter().any(|scope| scope == DEMO_SCOPE) {
        scopes.insert(0, DEMO_SCOPE.to_owned());
    }
    Ok(scopes)
}

async fn render_new(
    page: &Page,
    state: &AppState,
    site_id: i64,
    form: &NewForm,
    errors: &FormErrors,
) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("form", form);
    context.insert("scopes", &known_scopes(state, site_id).await?);
    context.insert("session_choices", &SESSION_CHOICES);
    context.insert("mail_delivers", &state.mailer.delivers());
    context.insert("max_link_days", &MAX_LINK_DAYS);
    page.render_form("visitors/staff_new.html", context, errors)
}

pub async fn new_page(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    _staff: Staff,
) -> AppResult<HttpResponse> {
    let form = NewForm {
        scope: DEMO_SCOPE.to_owned(),
        link_days: state.settings.visitors.token_expiry_days.to_string(),
        session_secs: "0".to_owned(),
        send_mail: "yes".to_owned(),
        ..NewForm::default()
    };
    render_new(&page, &state, site.0.id, &form, &FormErrors::default()).await
}

/// What the "made" page shows, sealed in the session until then.
#[derive(Serialize, Deserialize)]
struct Shown {
    visitor_id: String,
    link: String,
    mailed: bool,
}

fn seal_context(user_id: i64) -> Vec<u8> {
    format!("gatehouse/shown-visitor-link\0{user_id}").into_bytes()
}

pub async fn create(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    staff: Staff,
    form: web::Form<NewForm>,
) -> AppResult<HttpResponse> {
    let checked = match check(&form) {
        Ok(checked) => checked,
        Err(errors) => return render_new(&page, &state, site.0.id, &form, &errors).await,
    };
    let send_mail = form.send_mail == "yes";
    let txn = crate::db::write_transaction(&state.db).await?;
    let (visitor, token) = super::create(
        &txn,
        NewVisitor {
            site_id: site.0.id,
            scope: checked.scope,
            first_name: form.first_name.clone(),
            last_name: form.last_name.clone(),
            email: checked.email.clone(),
            context: checked.context,
            valid_for: Duration::days(checked.link_days.into()),
            session_expiry_secs: checked.session_secs,
            created_by: Some(staff.0.id),
        },
    )
    .await?;
    let link = tokens::tokenise(
        &format!("{}{}", state.base_url_of(&site.0), checked.path),
        &state.settings.visitors.querystring_key,
        &token,
    );
    let detail = format!("{}, scope {}", visitor.email, visitor.scope);
    let now = Utc::now();
    audit::record(
        &txn,
        site.0.id,
        &Actor::staff(&staff.0),
        Action::VisitorCreated,
        &full_name(&visitor),
        &detail,
        now,
    )
    .await?;
    if send_mail {
        let mail = link_mail(&state, &site.0, &visitor, &link, &staff.0.display_name)?;
        state
            .mailer
            .queue_from_site(&txn, &site.0, &checked.email, &mail, None, now)
            .await?;
    }
    txn.commit().await?;
    if send_mail {
        state.mailer.wake();
    }
    let shown = Shown {
        visitor_id: visitor.id,
        link,
        mailed: send_mail,
    };
    let sealed = state.keys.session_key().seal(
        &seal_context(staff.0.id),
        &serde_json::to_vec(&shown).map_err(anyhow::Error::from)?,
    );
    TypedSession::of(&req)
        .set_shown_visitor_link(hex::encode(sealed))
        .map_err(|err| AppError::Internal(anyhow::anyhow!("could not keep the link: {err}")))?;
    Ok(see_other("/staff/visitors/made"))
}

fn link_mail(
    state: &AppState,
    site: &crate::web::sites::Site,
    visitor: &visitors::Model,
    link: &str,
    sender_name: &str,
) -> AppResult<Mail> {
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("first_name", &visitor.first_name);
    context.insert("sender", sender_name);
    context.insert("link", link);
    context.insert(
        "valid_until",
        &state
            .zone()
            .format(visitor.expires_at, DateStyle::DayAndTime),
    );
    Ok(Mail::from_template(
        &state.templates,
        "visitor_link",
        &context,
    )?)
}

pub async fn made_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    staff: Staff,
) -> AppResult<HttpResponse> {
    let shown = if req.method() == actix_web::http::Method::HEAD {
        None
    } else {
        TypedSession::of(&req)
            .take_shown_visitor_link()
            .and_then(|sealed| hex::decode(sealed).ok())
            .and_then(|sealed| {
                state
                    .keys
                    .session_key()
                    .open(&seal_context(staff.0.id), &sealed)
                    .ok()
            })
            .and_then(|plain| serde_json::from_slice::<Shown>(&plain).ok())
    };
    let Some(shown) = shown else {
        flash(
            &req,
            FlashLevel::Info,
            "A new visitor link is shown only once, right after it is made. To give someone \
             a link again, make a new one.",
        );
        return Ok(see_other("/staff/visitors"));
    };
    let visitor = super::find(&state.db, &shown.visitor_id)
        .await?
        .filter(|visitor| visitor.site_id == site.0.id)
        .ok_or(AppError::NotFound)?;
    let mut context = Context::new();
    context.insert(
        "visitor",
        &super::CurrentVisitor::of(&visitor, state.zone()),
    );
    context.insert("link", &shown.link);
    context.insert("mailed", &shown.mailed);
    context.insert("mail_delivers", &state.mailer.delivers());
    context.insert(
        "expires_at",
        &state.zone().format(visitor.expires_at, DateStyle::Stamp),
    );
    page.render("visitors/staff_made.html", context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_lines_become_an_object() {
        assert_eq!(parse_context("  \n").expect("read"), None);
        assert_eq!(
            parse_context("Company: Acme\nrole : buyer: senior\n").expect("read"),
            Some(serde_json::json!({"Company": "Acme", "role": "buyer: senior"}))
        );
        assert!(
            parse_context("no colon here")
                .expect_err("refused")
                .contains("Line 1")
        );
        assert!(
            parse_context("a: b\n: c")
                .expect_err("refused")
                .contains("Line 2")
        );
    }
}
