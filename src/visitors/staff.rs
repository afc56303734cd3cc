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

use super::{VisitorState, full_name, state_of};
use crate::AppState;
use crate::dates::{self, DateStyle};
use crate::entities::{visitor_logs, visitors};
use crate::error::{AppError, AppResult};
use crate::web::auth::Staff;
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::pager;
use crate::web::sites::CurrentSite;

pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/visitors", page::get().to(list))
        .route("/visitors/{id}", page::get().to(detail))
        .route("/visitors/{id}/deactivate", web::post().to(deactivate))
        .route("/visitors/{id}/reactivate", web::post().to(reactivate));
}

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
            created_at: dates::format(visitor.created_at, DateStyle::Short),
            expires_at: dates::format(visitor.expires_at, DateStyle::Short),
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
            timestamp: dates::format(log.timestamp, DateStyle::Seconds),
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
    context.insert("visitor", &super::CurrentVisitor::from(&visitor));
    context.insert("state", &state_of(&visitor, Utc::now()));
    context.insert(
        "created_at",
        &dates::format(visitor.created_at, DateStyle::Short),
    );
    context.insert(
        "expires_at",
        &dates::format(visitor.expires_at, DateStyle::Short),
    );
    context.insert("session_expiry_secs", &visitor.session_expiry_secs);
    context.insert(
        "context_json",
        &visitor
            .context
            .as_ref()
            .map(|json| serde_json::to_string_pretty(json).unwrap_or_default()),
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

async fn deactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    site: CurrentSite,
    staff: Staff,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let visitor = find_on_site(&state, &site, &id).await?;
    super::deactivate(&state.db, &visitor.id).await?;
    log::info!(
        "Staff member {} deactivated visitor {}.",
        staff.0.id,
        visitor.id
    );
    flash(
        &req,
        FlashLevel::Success,
        format!(
            "The visitor pass of {} has been disabled.",
            full_name(&visitor)
        ),
    );
    Ok(see_other(&format!("/staff/visitors/{}", visitor.id)))
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
    super::reactivate(&state.db, &visitor.id, Duration::days(days.into())).await?;
    log::info!(
        "Staff member {} reactivated visitor {}.",
        staff.0.id,
        visitor.id
    );
    flash(
        &req,
        FlashLevel::Success,
        format!(
            "The visitor pass of {} is active again for {days} days.",
            full_name(&visitor)
        ),
    );
    Ok(see_other(&format!("/staff/visitors/{}", visitor.id)))
}
