//! Staff pages for visitors: a filterable list, a detail page with the visit
//! log (flagging links used from several sessions or addresses, the reason
//! the logs exist), and deactivate / reactivate.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{EndedReason, VisitorState, full_name, state_of};
use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::dates::DateStyle;
use crate::entities::{visitor_logs, visitors};
use crate::error::{AppError, AppResult};
use crate::web::auth::Staff;
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::pager;
use crate::web::sites::CurrentSite;

pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    // The fixed paths before "/visitors/{id}", which would take them.
    cfg.route("/visitors", page::get().to(list))
        .route("/visitors/new", page::get().to(super::new::new_page))
        .route("/visitors/new", web::post().to(super::new::create))
        .route("/visitors/made", page::get().to(super::new::made_page))
        .route("/visitors/deactivate", web::post().to(deactivate_many))
        .route("/visitors/{id}", page::get().to(detail))
        .route("/visitors/{id}/deactivate", web::post().to(deactivate))
        .route("/visitors/{id}/reactivate", web::post().to(reactivate));
}

/// Most links one "Deactivate selected" acts on (a page of the list).
const MAX_BULK: usize = 100;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct ListQuery {
    /// Free text: name or e-mail.
    q: String,
    scope: String,
    /// "", "active", "inactive" or "expired".
    state: String,
    /// As typed: nonsense means page 1.
    page: String,
}

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    email: String,
    scope: String,
    created_at: String,
    expires_at: String,
    state: VisitorState,
}

async fn list(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    _staff: Staff,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let now = Utc::now();
    let mut find = visitors::Entity::find().filter(visitors::Column::SiteId.eq(site.0.id));
    let text = query.q.trim();
    if !text.is_empty() {
        let pattern = format!("%{}%", text.to_lowercase().replace(['%', '_'], ""));
        let lower = |column: visitors::Column| Expr::expr(Func::lower(Expr::col(column)));
        find = find.filter(
            Condition::any()
                .add(lower(visitors::Column::Email).like(pattern.clone()))
                .add(lower(visitors::Column::FirstName).like(pattern.clone()))
                .add(lower(visitors::Column::LastName).like(pattern)),
        );
    }
    if !query.scope.is_empty() {
        find = find.filter(visitors::Column::Scope.eq(query.scope.clone()));
    }
    find = match VisitorState::parse(&query.state) {
        Some(VisitorState::Active) => find
            .filter(visitors::Column::IsActive.eq(true))
            .filter(visitors::Column::ExpiresAt.gte(now)),
        Some(VisitorState::Inactive) => find.filter(visitors::Column::IsActive.eq(false)),
        Some(VisitorState::Expired) => find
            .filter(visitors::Column::IsActive.eq(true))
            .filter(visitors::Column::ExpiresAt.lt(now)),
        None => find,
    };
    let (found, pager) = pager::fetch(
        &state.db,
        find.order_by_desc(visitors::Column::CreatedAt),
        &query.page,
        "/staff/visitors",
        &[
            ("q", query.q.as_str()),
            ("scope", query.scope.as_str()),
            ("state", query.state.as_str()),
        ],
    )
    .await?;
    let rows: Vec<Row> = found
        .iter()
        .map(|visitor| Row {
            id: visitor.id.clone(),
            name: full_name(visitor),
            email: visitor.email.clone(),
            scope: visitor.scope.clone(),
            created_at: state.zone().format(visitor.created_at, DateStyle::Stamp),
            expires_at: state.zone().format(visitor.expires_at, DateStyle::Stamp),
            state: state_of(visitor, now),
        })
        .collect();
    let scopes: Vec<String> = visitors::Entity::find()
        .select_only()
        .column(visitors::Column::Scope)
        .distinct()
        .filter(visitors::Column::SiteId.eq(site.0.id))
        .order_by_asc(visitors::Column::Scope)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("scopes", &scopes);
    context.insert("query", &*query);
    context.insert("pager", &pager);
    page.render("visitors/staff_list.html", context)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DetailQuery {
    /// As typed: nonsense means page 1.
    page: String,
}

#[derive(Serialize)]
struct LogRow {
    timestamp: String,
    method: String,
    path: String,
    status: i32,
    remote_addr: String,
    session: String,
    user_agent: String,
    referer: String,
}

async fn find_on_site(
    state: &AppState,
    site: &CurrentSite,
    id: &str,
) -> AppResult<visitors::Model> {
    super::find(&state.db, id)
        .await?
        .filter(|visitor| visitor.site_id == site.0.id)
        .ok_or(AppError::NotFound)
}

async fn detail(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    _staff: Staff,
    id: web::Path<String>,
    query: web::Query<DetailQuery>,
) -> AppResult<HttpResponse> {
    let visitor = find_on_site(&state, &site, &id).await?;
    let logs = visitor_logs::Entity::find()
        .filter(visitor_logs::Column::VisitorId.eq(visitor.id.clone()))
        .order_by_desc(visitor_logs::Column::Timestamp)
        .order_by_desc(visitor_logs::Column::Id);
    let (found, pager) = pager::fetch(
        &state.db,
        logs,
        &query.page,
        &format!("/staff/visitors/{}", visitor.id),
        &[],
    )
    .await?;
    let log_rows: Vec<LogRow> = found
        .into_iter()
        .map(|log| LogRow {
            timestamp: state.zone().format(log.timestamp, DateStyle::Seconds),
            method: log.http_method,
            path: log.request_path,
            status: log.status_code,
            remote_addr: log.remote_addr,
            // A short, stable label per session; the hash itself is not secret.
            session: log.session_hash.chars().take(8).collect(),
            user_agent: log.user_agent,
            referer: log.referer,
        })
        .collect();
    let sharing = sharing_of(&state, &visitor.id).await?;
    let mut context = Context::new();
    context.insert(
        "visitor",
        &super::CurrentVisitor::of(&visitor, state.zone()),
    );
    context.insert("state", &state_of(&visitor, Utc::now()));
    context.insert(
        "created_at",
        &state.zone().format(visitor.created_at, DateStyle::Stamp),
    );
    context.insert(
        "expires_at",
        &state.zone().format(visitor.expires_at, DateStyle::Stamp),
    );
    context.insert("ended", &ended_words(&visitor, state.zone()));
    context.insert("session_expiry_secs", &visitor.session_expiry_secs);
    context.insert("context_pairs", &context_pairs(visitor.context.as_ref()));
    context.insert(
        "session_after_use",
        &session_words(visitor.session_expiry_secs),
    );
    context.insert("logs", &log_rows);
    context.insert("pager", &pager);
    context.insert("sessions_seen", &sharing.0);
    context.insert("addresses_seen", &sharing.1);
    context.insert(
        "reactivate_days",
        &state.settings.visitors.token_expiry_days,
    );
    page.render("visitors/staff_detail.html", context)
}

/// Why and when the link was switched off, for staff ("" while it works).
fn ended_words(visitor: &visitors::Model, zone: crate::dates::Zone) -> String {
    if visitor.is_active {
        return String::new();
    }
    let why = match visitor.ended_reason {
        Some(EndedReason::ReferenceSent) => "the visitor sent the reference",
        Some(EndedReason::Replaced) => "a newer link was sent to the same person",
        Some(EndedReason::Withdrawn) => "the member withdrew the reference request",
        Some(EndedReason::Deactivated) => "deactivated by staff",
        None => "deactivated",
    };
    match visitor.ended_at {
        Some(at) => format!("{}: {why}", zone.format(at, DateStyle::Stamp)),
        None => why.to_owned(),
    }
}

/// A visitor's context as name/value pairs to read: an object's entries
/// (text as is, anything else as compact JSON), or the one value.
fn context_pairs(context: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let shown = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match context {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| (key.replace('_', " "), shown(value)))
            .collect(),
        Some(other) => vec![("Details".to_owned(), shown(other))],
    }
}

/// How long a visit lasts after the link is opened, in words.
fn session_words(secs: i64) -> String {
    if let Some((_, words)) = super::new::SESSION_CHOICES
        .iter()
        .find(|(choice, _)| *choice == secs)
    {
        return (*words).to_owned();
    }
    match secs {
        ..=0 => "Until the browser closes".to_owned(),
        secs if secs % 86_400 == 0 => format!("{} days", secs / 86_400),
        secs if secs % 3_600 == 0 => format!("{} hours", secs / 3_600),
        secs if secs % 60 == 0 => format!("{} minutes", secs / 60),
        secs => format!("{secs} seconds"),
    }
}

/// How many distinct sessions and client addresses used this link.
async fn sharing_of(state: &AppState, visitor_id: &str) -> AppResult<(i64, i64)> {
    let count_distinct = |column: visitor_logs::Column| {
        visitor_logs::Entity::find()
            .select_only()
            .expr(Expr::expr(Func::count_distinct(Expr::col(column))))
            .filter(visitor_logs::Column::VisitorId.eq(visitor_id))
            .filter(Expr::col(column).ne(""))
            .into_tuple::<i64>()
            .one(&state.db)
    };
    let sessions = count_distinct(visitor_logs::Column::SessionHash)
        .await?
        .unwrap_or(0);
    let addresses = count_distinct(visitor_logs::Column::RemoteAddr)
        .await?
        .unwrap_or(0);
    Ok((sessions, addresses))
}

/// A destructive POST is done only with `confirm=yes`; without it the
/// answer is a page that names who is affected and asks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Confirm {
    confirm: String,
}

/// Who a deactivation affects, for the confirmation page.
#[derive(Serialize)]
struct Affected {
    id: String,
    name: String,
    email: String,
}

fn affected(visitor: &visitors::Model) -> Affected {
    Affected {
        id: visitor.id.clone(),
        name: full_name(visitor),
        email: visitor.email.clone(),
    }
}

fn confirm_page(page: &Page, chosen: &[visitors::Model], back: &str) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("visitors", &chosen.iter().map(affected).collect::<Vec<_>>());
    context.insert("back", back);
    page.render("visitors/staff_confirm.html", context)
}

/// Deactivates `chosen` and records each in the audit log, in one transaction.
async fn deactivate_all(
    state: &AppState,
    site: &CurrentSite,
    staff: &Staff,
    chosen: &[visitors::Model],
) -> AppResult<()> {
    let txn = crate::db::write_transaction(&state.db).await?;
    let actor = Actor::staff(&staff.0);
    let now = Utc::now();
    for visitor in chosen {
        if super::deactivate(&txn, &visitor.id, EndedReason::Deactivated, now).await? {
            let detail = format!("{}, scope {}", visitor.email, visitor.scope);
            audit::record(
                &txn,
                site.0.id,
                &actor,
                Action::VisitorDeactivated,
                &full_name(visitor),
                &detail,
                now,
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

async fn deactivate(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    staff: Staff,
    id: web::Path<String>,
    form: web::Form<Confirm>,
) -> AppResult<HttpResponse> {
    let visitor = find_on_site(&state, &site, &id).await?;
    let back = format!("/staff/visitors/{}", visitor.id);
    if form.confirm != "yes" {
        return confirm_page(&page, std::slice::from_ref(&visitor), &back);
    }
    deactivate_all(&state, &site, &staff, std::slice::from_ref(&visitor)).await?;
    flash(
        &req,
        FlashLevel::Success,
        format!(
            "The visitor link of {} has been deactivated.",
            full_name(&visitor)
        ),
    );
    Ok(see_other(&back))
}

/// The list's "Deactivate selected": `id` repeated, once per ticked row.
async fn deactivate_many(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    staff: Staff,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let mut ids = Vec::new();
    let mut confirmed = false;
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "id" if ids.len() < MAX_BULK => ids.push(value.into_owned()),
            "confirm" => confirmed = value == "yes",
            _ => {}
        }
    }
    let chosen: Vec<visitors::Model> = visitors::Entity::find()
        .filter(visitors::Column::SiteId.eq(site.0.id))
        .filter(visitors::Column::Id.is_in(ids))
        .filter(visitors::Column::IsActive.eq(true))
        .order_by_asc(visitors::Column::FirstName)
        .all(&state.db)
        .await?;
    if chosen.is_empty() {
        flash(
            &req,
            FlashLevel::Info,
            "Tick the active visitor links to deactivate first, then press \"Deactivate selected\".",
        );
        return Ok(see_other("/staff/visitors"));
    }
    if !confirmed {
        return confirm_page(&page, &chosen, "/staff/visitors");
    }
    deactivate_all(&state, &site, &staff, &chosen).await?;
    flash(
        &req,
        FlashLevel::Success,
        match chosen.as_slice() {
            [one] => format!(
                "The visitor link of {} has been deactivated.",
                full_name(one)
            ),
            many => format!("{} visitor links have been deactivated.", many.len()),
        },
    );
    Ok(see_other("/staff/visitors"))
}

async fn reactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    site: CurrentSite,
    staff: Staff,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let visitor = find_on_site(&state, &site, &id).await?;
    let days = state.settings.visitors.token_expiry_days;
    let txn = crate::db::write_transaction(&state.db).await?;
    super::reactivate(&txn, &visitor.id, Duration::days(days.into())).await?;
    let detail = format!("{}, for {days} days", visitor.email);
    audit::record(
        &txn,
        site.0.id,
        &Actor::staff(&staff.0),
        Action::VisitorReactivated,
        &full_name(&visitor),
        &detail,
        Utc::now(),
    )
    .await?;
    txn.commit().await?;
    flash(
        &req,
        FlashLevel::Success,
        format!(
            "The visitor link of {} works again for {days} days.",
            full_name(&visitor)
        ),
    );
    Ok(see_other(&format!("/staff/visitors/{}", visitor.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_as_pairs() {
        let context = serde_json::json!({"reference_id": 42, "company": "Acme"});
        assert_eq!(
            context_pairs(Some(&context)),
            vec![
                ("company".to_owned(), "Acme".to_owned()),
                ("reference id".to_owned(), "42".to_owned())
            ]
        );
        assert!(context_pairs(None).is_empty());
    }

    #[test]
    fn session_lengths_read_as_words() {
        assert_eq!(session_words(0), "Until the browser closes");
        assert_eq!(session_words(3_600), "An hour");
        assert_eq!(session_words(7_200), "2 hours");
        assert_eq!(session_words(90), "90 seconds");
    }
}
