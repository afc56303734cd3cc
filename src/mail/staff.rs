//! `/staff/mail`: the site's outgoing mail, waiting and failed first, with a
//! retry button. Bodies are never shown (they are sealed, then erased).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::dates::DateStyle;
use crate::entities::mail_outbox;
use crate::error::AppResult;
use crate::mail::delivery::Delivery;
use crate::mail::outbox::{self, Status};
use crate::web::auth::Staff;
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::pager;
use crate::web::sites::CurrentSite;
use crate::web::staff_guard::{BackForm, back_to};

const PATH: &str = "/staff/mail";

pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mail", page::get().to(list))
        .route("/mail/{id}/retry", web::post().to(retry));
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    /// "" (waiting and failed), "sent" or "all".
    show: String,
    page: String,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    recipient: String,
    subject: String,
    badge: Delivery,
    attempts: i32,
    created: String,
    next_attempt: Option<String>,
    sent: Option<String>,
    last_error: Option<String>,
    can_retry: bool,
}

async fn list(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    _staff: Staff,
    site: CurrentSite,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let show = match query.show.as_str() {
        "sent" => "sent",
        "all" => "all",
        _ => "",
    };
    let mut select = mail_outbox::Entity::find().filter(mail_outbox::Column::SiteId.eq(site.0.id));
    select = match show {
        "sent" => select.filter(mail_outbox::Column::Status.eq(Status::Sent)),
        "all" => select,
        _ => select.filter(mail_outbox::Column::Status.is_in([Status::Pending, Status::Failed])),
    };
    let select = select
        .order_by_desc(mail_outbox::Column::CreatedAt)
        .order_by_desc(mail_outbox::Column::Id);
    let (found, pager) =
        pager::fetch(&state.db, select, &query.page, PATH, &[("show", show)]).await?;
    let now = Utc::now();
    let rows: Vec<Row> = found
        .into_iter()
        .map(|row| {
            let delivery = Delivery::of(&row);
            Row {
                id: row.id,
                can_retry: row.body.is_some()
                    && matches!(delivery, Delivery::Failed | Delivery::Retrying),
                badge: delivery,
                attempts: row.attempts,
                created: state.zone().format(row.created_at, DateStyle::Stamp),
                next_attempt: delivery.is_waiting().then(|| {
                    if row.next_attempt_at <= now {
                        "now".to_owned()
                    } else {
                        state.zone().format(row.next_attempt_at, DateStyle::Stamp)
                    }
                }),
                sent: row
                    .sent_at
                    .map(|at| state.zone().format(at, DateStyle::Stamp)),
                recipient: row.recipient,
                subject: row.subject,
                last_error: row.last_error,
            }
        })
        .collect();
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("pager", &pager);
    context.insert("show", show);
    context.insert("mail_delivers", &state.mailer.delivers());
    context.insert("back", &crate::web::auth::here(&req));
    page.render("staff/mail.html", context)
}

async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
    form: web::Form<BackForm>,
) -> AppResult<HttpResponse> {
    let now = Utc::now();
    let txn = crate::db::write_transaction(&state.db).await?;
    let row = mail_outbox::Entity::find_by_id(*id)
        .filter(mail_outbox::Column::SiteId.eq(site.0.id))
        .one(&txn)
        .await?
        .ok_or(crate::error::AppError::NotFound)?;
    let retried = outbox::retry(&txn, site.0.id, row.id, now).await?;
    if retried {
        audit::record(
            &txn,
            site.0.id,
            &Actor::staff(&staff.0),
            Action::MailRetried,
            &row.recipient,
            &format!("mail #{}: {}", row.id, row.subject),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    if retried {
        state.mailer.wake();
        flash(
            &req,
            FlashLevel::Success,
            format!("The mail to {} is being sent again.", row.recipient),
        );
    } else {
        flash(
            &req,
            FlashLevel::Info,
            format!("The mail to {} was already delivered.", row.recipient),
        );
    }
    Ok(see_other(&back_to(&form.back, PATH)))
}
