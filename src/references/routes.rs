//! Member pages: ask for a reference, follow your requests (cancel, send
//! again), read a completed reference (requester and staff only; others get
//! 404, so ids reveal nothing).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{Answers, NewRequest, RECOMMENDATIONS, RequestError, RequestState, state_of};
use crate::AppState;
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::entities::reference_requests::{self, Column, Status};
use crate::error::{AppError, AppResult};
use crate::web::auth::Member;
use crate::web::confirm::{self, ConfirmForm, Question};
use crate::web::forms::{FormErrors, check_length};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::pager;
use crate::web::sites::CurrentSite;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/references", page::get().to(list))
        .service(
            web::resource("/references/request")
                .route(page::get().to(request_page))
                .route(web::post().to(request)),
        )
        .route("/references/thanks", page::get().to(thanks));
    super::respond::routes(cfg);
    cfg.route("/references/{id}", page::get().to(detail))
        .route("/references/{id}/cancel", web::post().to(cancel))
        .route("/references/{id}/send-again", web::post().to(send_again));
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RequestForm {
    name: String,
    email: String,
    message: String,
}

fn render_request(page: &Page, form: &RequestForm, errors: &FormErrors) -> AppResult<HttpResponse> {
    let mut context = Context::new();
    context.insert("name", &form.name);
    context.insert("email", &form.email);
    context.insert("message", &form.message);
    page.render_form("references/request.html", context, errors)
}

async fn request_page(page: Page, _member: Member) -> AppResult<HttpResponse> {
    render_request(&page, &RequestForm::default(), &FormErrors::default())
}

async fn request(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    member: Member,
    form: web::Form<RequestForm>,
) -> AppResult<HttpResponse> {
    let mut errors = FormErrors::default();
    if form.name.trim().is_empty() {
        errors.add("name", "Enter the name of the person you are asking.");
    }
    check_length(&mut errors, "name", "The name", &form.name, 150);
    let email = EmailAddress::parse(&form.email);
    if let Err(err) = &email {
        errors.add("email", err.to_string());
    }
    if form.message.trim().is_empty() {
        errors.add(
            "message",
            "Write a few words to them: they will read it in the e-mail.",
        );
    }
    check_length(&mut errors, "message", "The message", &form.message, 2000);
    let (Ok(email), true) = (email, errors.is_empty()) else {
        return render_request(&page, &form, &errors);
    };
    let new = NewRequest {
        referee_name: form.name.clone(),
        referee_email: email,
        message: form.message.clone(),
    };
    match super::create(&state, &site.0, &member.0, new).await {
        Ok(_) => {
            flash(
                &req,
                FlashLevel::Success,
                format!("Your request has been sent to {}.", form.name.trim()),
            );
            Ok(see_other("/references"))
        }
        Err(RequestError::Yourself) => {
            errors.add("email", RequestError::Yourself.to_string());
            render_request(&page, &form, &errors)
        }
        Err(err @ RequestError::TooMany(_)) => {
            errors.add("form", err.to_string());
            render_request(&page, &form, &errors)
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    page: String,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    referee_name: String,
    referee_email: String,
    status: RequestState,
    created: String,
    link_expires: String,
    completed: Option<String>,
}

async fn list(
    page: Page,
    state: web::Data<AppState>,
    member: Member,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let now = Utc::now();
    let mine = reference_requests::Entity::find()
        .filter(Column::RequesterId.eq(member.0.id))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id);
    let (found, pager) = pager::fetch(&state.db, mine, &query.page, "/references", &[]).await?;
    let rows: Vec<Row> = found
        .iter()
        .map(|request| Row {
            id: request.id,
            referee_name: request.referee_name.clone(),
            referee_email: request.referee_email.clone(),
            status: state_of(request, now),
            created: state.zone().format(request.created_at, DateStyle::Stamp),
            link_expires: state
                .zone()
                .format(request.link_expires_at, DateStyle::Stamp),
            completed: request
                .completed_at
                .map(|at| state.zone().format(at, DateStyle::Stamp)),
        })
        .collect();
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("pager", &pager);
    page.render("references/list.html", context)
}

async fn detail(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    member: Member,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let request = reference_requests::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|request| request.site_id == site.0.id)
        .filter(|request| request.requester_id == member.0.id || member.0.is_staff)
        .ok_or(AppError::NotFound)?;
    let status = state_of(&request, Utc::now());
    let answers = Answers::of(&request);
    let recommendation = RECOMMENDATIONS
        .iter()
        .find(|(value, _)| *value == answers.recommendation)
        .map_or("", |(_, label)| label);
    let mut context = Context::new();
    context.insert("request_id", &request.id);
    context.insert("referee_name", &request.referee_name);
    context.insert("referee_email", &request.referee_email);
    context.insert("message", &request.message);
    context.insert("status", &status);
    context.insert(
        "created",
        &state.zone().format(request.created_at, DateStyle::Stamp),
    );
    context.insert(
        "completed",
        &request
            .completed_at
            .map(|at| state.zone().format(at, DateStyle::Stamp)),
    );
    context.insert("mine", &(request.requester_id == member.0.id));
    if status == RequestState::Completed {
        context.insert("answers", &answers);
        context.insert("recommendation", recommendation);
    }
    page.render("references/detail.html", context)
}

/// The member's own request, while it can still be cancelled or sent again
/// (`None` once the reference is written). Other people's: 404.
async fn own_open_request(
    state: &AppState,
    member: &Member,
    id: &str,
) -> AppResult<Option<reference_requests::Model>> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let request = super::find_own(state, &member.0, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok((request.status != Status::Completed).then_some(request))
}

fn already_written(req: &HttpRequest) -> HttpResponse {
    flash(
        req,
        FlashLevel::Warning,
        "That reference is already written.",
    );
    see_other("/references")
}

async fn cancel(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    member: Member,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> AppResult<HttpResponse> {
    let Some(request) = own_open_request(&state, &member, &id).await? else {
        return Ok(already_written(&req));
    };
    if !form.confirmed() {
        let name = &request.referee_name;
        return confirm::ask(
            &page,
            &Question {
                title: format!("Cancel your request to {name}?"),
                effect: format!(
                    "The link sent to {name} stops working at once, and anything they have written so far is not sent to you."
                ),
                action: format!("/references/{}/cancel", request.id),
                yes: "Cancel the request".into(),
                no: "Keep it open".into(),
                back: "/references".into(),
                resend: Vec::new(),
            },
        );
    }
    super::cancel(&state, &request).await?;
    flash(
        &req,
        FlashLevel::Success,
        format!(
            "Your request to {} is cancelled; their link no longer works.",
            request.referee_name
        ),
    );
    Ok(see_other("/references"))
}

async fn send_again(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    member: Member,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> AppResult<HttpResponse> {
    let Some(request) = own_open_request(&state, &member, &id).await? else {
        return Ok(already_written(&req));
    };
    if !form.confirmed() {
        let name = &request.referee_name;
        return confirm::ask(
            &page,
            &Question {
                title: format!("Send {name} a new link?"),
                effect: format!(
                    "A new e-mail goes to {}. The link in the earlier e-mail stops working; what {name} has written so far is kept.",
                    request.referee_email
                ),
                action: format!("/references/{}/send-again", request.id),
                yes: "Send a new link".into(),
                no: "Don’t send".into(),
                back: "/references".into(),
                resend: Vec::new(),
            },
        );
    }
    let name = request.referee_name.clone();
    match super::send_again(&state, &site.0, &member.0, request).await {
        Ok(_) => flash(
            &req,
            FlashLevel::Success,
            format!("A new link is on its way to {name}; the old one no longer works."),
        ),
        Err(err @ RequestError::TooMany(_)) => flash(&req, FlashLevel::Error, err.to_string()),
        Err(other) => return Err(other.into()),
    }
    Ok(see_other("/references"))
}

/// Where a referee lands after confirming (their visitor pass is gone).
async fn thanks(page: Page) -> AppResult<HttpResponse> {
    page.render("references/thanks.html", Context::new())
}
