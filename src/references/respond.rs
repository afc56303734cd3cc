//! The referee's flow, for visitors of scope `reference-request` only (a
//! logged-in member without the pass gets 403 too): relationship →
//! reference → confirm. Answers are saved at every step (a closed tab loses
//! nothing while the pass is valid), a step cannot be reached before the
//! ones it needs, and confirming ends the visitor's access.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use tera::Context;

use super::{Answers, RECOMMENDATIONS, RequestState, state_of};
use crate::AppState;
use crate::entities::reference_requests::Model as Request;
use crate::error::{AppError, AppResult};
use crate::visitors::{Bypass, CurrentVisitor, VisitorGuard};
use crate::web::forms::{FormErrors, check_length};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::session::TypedSession;
use crate::web::sites::CurrentSite;

const BASE: &str = "/references/respond";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(BASE)
            .wrap(VisitorGuard::scope(super::SCOPE).bypass(Bypass::Nobody))
            .route("", page::get().to(start))
            .service(
                web::resource("/relationship")
                    .route(page::get().to(relationship_page))
                    .route(web::post().to(relationship)),
            )
            .service(
                web::resource("/reference")
                    .route(page::get().to(reference_page))
                    .route(web::post().to(reference)),
            )
            .service(
                web::resource("/confirm")
                    .route(page::get().to(confirm_page))
                    .route(web::post().to(confirm)),
            ),
    );
}

/// The open request this visitor answers; marks it opened.
async fn open_request(state: &AppState, visitor: &CurrentVisitor) -> AppResult<Request> {
    let request = super::for_visitor(state, visitor)
        .await?
        .ok_or_else(|| AppError::Forbidden("This link is not for a reference request.".into()))?;
    match state_of(&request, chrono::Utc::now()) {
        RequestState::Requested | RequestState::Opened => {}
        _ => {
            return Err(AppError::Forbidden(
                "This reference request is no longer open.".into(),
            ));
        }
    }
    // Only the first visit changes anything: no write on every step.
    if state_of(&request, chrono::Utc::now()) == RequestState::Requested {
        super::mark_opened(state, &request).await?;
    }
    Ok(request)
}

/// The first step still missing an answer.
fn next_step(answers: &Answers) -> &'static str {
    if !answers.has_relationship() {
        "/references/respond/relationship"
    } else if !answers.has_reference() {
        "/references/respond/reference"
    } else {
        "/references/respond/confirm"
    }
}

/// What every step shows: where the referee is, who asked and their message,
/// and where a step returns to (`then`: "confirm" when editing from the review).
async fn step_context(
    state: &AppState,
    request: &Request,
    step: u8,
    then: &str,
) -> AppResult<Context> {
    let mut context = Context::new();
    context.insert("step", &step);
    context.insert("message", &request.message);
    context.insert("member", &super::requester_name(state, request).await?);
    context.insert("then", if then == "confirm" { "confirm" } else { "" });
    Ok(context)
}

/// Where a step's page came from: `?then=confirm` from the review page.
#[derive(Default, Deserialize)]
#[serde(default)]
struct StepQuery {
    then: String,
}

/// After a step is saved: the review when editing from it, else the next step.
fn after_step(then: &str, answers: &Answers, next: &'static str) -> HttpResponse {
    if then == "confirm" {
        see_other(next_step(answers))
    } else {
        see_other(next)
    }
}

async fn start(state: web::Data<AppState>, visitor: CurrentVisitor) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    Ok(see_other(next_step(&Answers::of(&request))))
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RelationshipForm {
    relationship: String,
    years_known: String,
    then: String,
}

async fn render_relationship(
    page: &Page,
    state: &AppState,
    request: &Request,
    form: &RelationshipForm,
    errors: &FormErrors,
) -> AppResult<HttpResponse> {
    let (relationship, years_known) = (&form.relationship, &form.years_known);
    let mut context = step_context(state, request, 1, &form.then).await?;
    context.insert("relationship", relationship);
    context.insert("years_known", years_known);
    page.render_form("references/respond_relationship.html", context, errors)
}

async fn relationship_page(
    page: Page,
    state: web::Data<AppState>,
    visitor: CurrentVisitor,
    query: web::Query<StepQuery>,
) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    let answers = Answers::of(&request);
    let form = RelationshipForm {
        relationship: answers.relationship.clone(),
        years_known: answers
            .years_known
            .map(|y| y.to_string())
            .unwrap_or_default(),
        then: query.then.clone(),
    };
    render_relationship(&page, &state, &request, &form, &FormErrors::default()).await
}

async fn relationship(
    page: Page,
    state: web::Data<AppState>,
    visitor: CurrentVisitor,
    form: web::Form<RelationshipForm>,
) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    let mut errors = FormErrors::default();
    let text = form.relationship.trim();
    if text.is_empty() {
        errors.add(
            "relationship",
            "Say how you know them, e.g. \"dance partner\".",
        );
    }
    check_length(&mut errors, "relationship", "This", text, 200);
    let years = form
        .years_known
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|years| *years <= 100);
    if years.is_none() {
        errors.add("years_known", "Enter a number of years from 0 to 100.");
    }
    if !errors.is_empty() {
        return render_relationship(&page, &state, &request, &form, &errors).await;
    }
    let mut answers = Answers::of(&request);
    answers.relationship = text.to_owned();
    answers.years_known = years;
    super::save_answers(&state, &request, &answers).await?;
    Ok(after_step(
        &form.then,
        &answers,
        "/references/respond/reference",
    ))
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ReferenceForm {
    reference: String,
    recommendation: String,
    then: String,
    /// "back": keep what was typed as a draft, unchecked, and go back a step.
    go: String,
}

async fn render_reference(
    page: &Page,
    state: &AppState,
    request: &Request,
    form: &ReferenceForm,
    errors: &FormErrors,
) -> AppResult<HttpResponse> {
    let mut context = step_context(state, request, 2, &form.then).await?;
    context.insert("reference", &form.reference);
    context.insert("recommendation", &form.recommendation);
    context.insert("choices", &RECOMMENDATIONS);
    page.render_form("references/respond_reference.html", context, errors)
}

/// A step reached before the ones it needs sends the referee back to them.
fn not_yet(req: &HttpRequest, answers: &Answers) -> HttpResponse {
    flash(req, FlashLevel::Info, "Please answer this step first.");
    see_other(next_step(answers))
}

async fn reference_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    visitor: CurrentVisitor,
    query: web::Query<StepQuery>,
) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    let answers = Answers::of(&request);
    if !answers.has_relationship() {
        return Ok(not_yet(&req, &answers));
    }
    let form = ReferenceForm {
        reference: answers.reference,
        recommendation: answers.recommendation,
        then: query.then.clone(),
        go: String::new(),
    };
    render_reference(&page, &state, &request, &form, &FormErrors::default()).await
}

async fn reference(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    visitor: CurrentVisitor,
    form: web::Form<ReferenceForm>,
) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    let mut answers = Answers::of(&request);
    if !answers.has_relationship() {
        return Ok(not_yet(&req, &answers));
    }
    if form.go == "back" {
        answers.reference = form.reference.trim().chars().take(5000).collect();
        if RECOMMENDATIONS
            .iter()
            .any(|(value, _)| *value == form.recommendation)
        {
            answers.recommendation = form.recommendation.clone();
        }
        super::save_answers(&state, &request, &answers).await?;
        return Ok(see_other("/references/respond/relationship"));
    }
    let mut errors = FormErrors::default();
    let text = form.reference.trim();
    if text.chars().count() < super::MIN_REFERENCE_CHARS {
        errors.add(
            "reference",
            "Write at least a couple of sentences (20 characters or more).",
        );
    }
    check_length(&mut errors, "reference", "The reference", text, 5000);
    if !RECOMMENDATIONS
        .iter()
        .any(|(value, _)| *value == form.recommendation)
    {
        errors.add("recommendation", "Choose one of the answers.");
    }
    if !errors.is_empty() {
        return render_reference(&page, &state, &request, &form, &errors).await;
    }
    answers.reference = text.to_owned();
    answers.recommendation = form.recommendation.clone();
    super::save_answers(&state, &request, &answers).await?;
    Ok(see_other("/references/respond/confirm"))
}

async fn confirm_page(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    visitor: CurrentVisitor,
) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    let answers = Answers::of(&request);
    if !answers.has_relationship() || !answers.has_reference() {
        return Ok(not_yet(&req, &answers));
    }
    let recommendation = RECOMMENDATIONS
        .iter()
        .find(|(value, _)| *value == answers.recommendation)
        .map_or("", |(_, label)| label);
    let mut context = step_context(&state, &request, 3, "").await?;
    context.insert("answers", &answers);
    context.insert("recommendation", recommendation);
    page.render("references/respond_confirm.html", context)
}

async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    site: CurrentSite,
    visitor: CurrentVisitor,
) -> AppResult<HttpResponse> {
    let request = open_request(&state, &visitor).await?;
    let answers = Answers::of(&request);
    if !answers.has_relationship() || !answers.has_reference() {
        return Ok(not_yet(&req, &answers));
    }
    super::complete(&state, &site.0, &request, &visitor).await?;
    TypedSession::of(&req).end_visit(&state.settings.visitors.session_key);
    Ok(see_other("/references/thanks"))
}
