//! `/staff/audit`: the site's audit log, newest first.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{self as audit, Action};
use crate::AppState;
use crate::dates::DateStyle;
use crate::error::AppResult;
use crate::web::auth::Staff;
use crate::web::page::{self, Page};
use crate::web::pager;
use crate::web::sites::CurrentSite;

const PATH: &str = "/staff/audit";

pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", page::get().to(list));
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    page: String,
}

#[derive(Serialize)]
struct Row {
    when: String,
    actor: String,
    action: String,
    label: String,
    subject: String,
    detail: String,
}

async fn list(
    page: Page,
    state: web::Data<AppState>,
    _staff: Staff,
    site: CurrentSite,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (found, pager) = pager::fetch(
        &state.db,
        audit::newest_first(site.0.id),
        &query.page,
        PATH,
        &[],
    )
    .await?;
    let rows: Vec<Row> = found
        .into_iter()
        .map(|row| Row {
            when: state.zone().format(row.created_at, DateStyle::Stamp),
            label: Action::label_of(&row.action).to_owned(),
            action: row.action,
            actor: row.actor,
            subject: row.subject,
            detail: row.detail,
        })
        .collect();
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("pager", &pager);
    page.render("staff/audit.html", context)
}
