//! Reference requests (django-visitors' canonical use): a member asks
//! someone without an account for a reference; the referee gets a visitor
//! link of scope `reference-request`, answers in three steps, and their
//! access ends when they confirm.

mod respond;
mod routes;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::AppState;
use crate::attempts::{self, Admission, Attempt, Kind, Limit, Outcome, Per, Ticket};
use crate::dates::DateStyle;
use crate::email_address::EmailAddress;
use crate::entities::reference_requests::{self, Column, Model as Request, Status};
use crate::mail::Mail;
use crate::visitors::{self, EndedReason, NewVisitor, Scope, tokens};
use crate::web::auth::CurrentUser;
use crate::web::sites::Site;

pub use routes::routes;

/// The visitor scope of referees.
pub const SCOPE: &str = "reference-request";

/// Where a request stands, as members see it: the stored status, with
/// "expired" for an open request whose link ran out. Serialises as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Requested,
    Opened,
    Completed,
    Expired,
    Cancelled,
}

pub fn state_of(request: &Request, now: DateTime<Utc>) -> RequestState {
    match request.status {
        Status::Completed => RequestState::Completed,
        Status::Cancelled => RequestState::Cancelled,
        _ if now > request.link_expires_at => RequestState::Expired,
        Status::Opened => RequestState::Opened,
        Status::Requested => RequestState::Requested,
    }
}

/// How many of a site's reference requests still wait for the referee:
/// requested or opened, link not expired (`state_of`).
pub async fn count_open(
    db: &impl sea_orm::ConnectionTrait,
    site_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    reference_requests::Entity::find()
        .filter(Column::SiteId.eq(site_id))
        .filter(Column::Status.is_in([Status::Requested, Status::Opened]))
        .filter(Column::LinkExpiresAt.gte(now))
        .count(db)
        .await
}

/// Reference requests made since `since`, and how many of them the referee
/// opened and completed (the staff index's funnel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult)]
pub struct Funnel {
    pub requested: i64,
    pub opened: i64,
    pub completed: i64,
}

pub async fn funnel_since(
    db: &impl sea_orm::ConnectionTrait,
    site_id: i64,
    since: DateTime<Utc>,
) -> Result<Funnel, DbErr> {
    use sea_orm::QuerySelect;
    let found = reference_requests::Entity::find()
        .select_only()
        .column_as(Expr::col(Column::Id).count(), "requested")
        .column_as(Expr::col(Column::OpenedAt).count(), "opened")
        .column_as(Expr::col(Column::CompletedAt).count(), "completed")
        .filter(Column::SiteId.eq(site_id))
        .filter(Column::CreatedAt.gte(since))
        .into_model::<Funnel>()
        .one(db)
        .await?;
    Ok(found.unwrap_or_default())
}

/// How many of a site's references were completed at or after `since`.
pub async fn count_completed_since(
    db: &impl sea_orm::ConnectionTrait,
    site_id: i64,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    reference_requests::Entity::find()
        .filter(Column::SiteId.eq(site_id))
        .filter(Column::CompletedAt.gte(since))
        .count(db)
        .await
}

/// What the referee has answered so far (a draft until confirmed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Answers {
    pub relationship: String,
    pub years_known: Option<u32>,
    pub reference: String,
    pub recommendation: String,
}

impl Answers {
    pub fn of(request: &Request) -> Self {
        request
            .answers
            .clone()
            .and_then(|json| serde_json::from_value(json).ok())
            .unwrap_or_default()
    }

    pub fn has_relationship(&self) -> bool {
        !self.relationship.is_empty() && self.years_known.is_some()
    }

    /// A reference that may be sent: long enough, with a recommendation
    /// (a draft kept by "Back" may be neither yet).
    pub fn has_reference(&self) -> bool {
        self.reference.trim().chars().count() >= MIN_REFERENCE_CHARS
            && RECOMMENDATIONS
                .iter()
                .any(|(value, _)| *value == self.recommendation)
    }
}

/// The shortest reference that may be sent.
pub const MIN_REFERENCE_CHARS: usize = 20;

/// The member who asked, as the referee reads their name.
pub async fn requester_name(state: &AppState, request: &Request) -> Result<String, DbErr> {
    let user = crate::entities::users::Entity::find_by_id(request.requester_id)
        .one(&state.db)
        .await?;
    Ok(user.map_or_else(String::new, |user| {
        let full = format!("{} {}", user.first_name, user.last_name);
        match full.trim() {
            "" => user.username,
            name => name.to_owned(),
        }
    }))
}

/// The recommendation choices, as stored and as shown.
pub const RECOMMENDATIONS: [(&str, &str); 4] = [
    ("strongly", "I recommend them strongly"),
    ("yes", "I recommend them"),
    ("reservations", "I recommend them with reservations"),
    ("no", "I do not recommend them"),
];

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("You cannot ask yourself for a reference.")]
    Yourself,
    #[error(
        "You can send {0} reference requests a day, links sent again included. Try again tomorrow."
    )]
    TooMany(u32),
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Mail(#[from] tera::Error),
}

/// Unexpected failures become server errors; the rule breaks (which the
/// request form shows next to its fields) a plain 400 elsewhere.
impl From<RequestError> for crate::error::AppError {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::Db(err) => err.into(),
            RequestError::Mail(err) => err.into(),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

pub struct NewRequest {
    pub referee_name: String,
    pub referee_email: EmailAddress,
    pub message: String,
}

/// Creates the request and its visitor, and queues the mail to the referee,
/// in one transaction.
pub async fn create(
    state: &AppState,
    site: &Site,
    requester: &CurrentUser,
    new: NewRequest,
) -> Result<Request, RequestError> {
    if new
        .referee_email
        .as_str()
        .eq_ignore_ascii_case(&requester.email)
    {
        return Err(RequestError::Yourself);
    }
    let now = Utc::now();
    let ticket = count_mail(state, site, requester, now).await?;
    let txn = crate::db::write_transaction(&state.db).await?;
    let request = reference_requests::ActiveModel {
        site_id: Set(site.id),
        requester_id: Set(requester.id),
        visitor_id: Set(None),
        referee_name: Set(new.referee_name.trim().to_owned()),
        referee_email: Set(new.referee_email.as_str().to_owned()),
        message: Set(new.message.trim().to_owned()),
        status: Set(Status::Requested),
        answers: Set(None),
        created_at: Set(now),
        link_expires_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let request = issue_link(state, site, requester, request, &txn, now).await?;
    txn.commit().await?;
    ticket.resolve(&state.db, Outcome::Used).await?;
    state.mailer.wake();
    Ok(request)
}

/// Counts one more mail to a referee against the member's daily limit (new
/// requests and "Send again" alike), recorded before anything is sent so
/// that a burst of presses cannot slip past it. The ticket stays pending
/// (and counts) until the caller resolves it.
async fn count_mail(
    state: &AppState,
    site: &Site,
    requester: &CurrentUser,
    now: DateTime<Utc>,
) -> Result<Ticket, RequestError> {
    let max = state.settings.references.max_requests_per_day;
    let attempt = Attempt {
        kind: Kind::ReferenceMail,
        site_id: site.id,
        ip: String::new(),
        account: Some(attempts::account_of_user(requester.id)),
    };
    let limit = Limit {
        per: Per::Account,
        kinds: &[Kind::ReferenceMail],
        max,
        window: Duration::days(1),
    };
    match attempts::admit(&state.db, &state.lane, &attempt, &[limit], now).await? {
        Admission::Admitted { ticket, .. } => Ok(ticket),
        Admission::Refused { .. } => Err(RequestError::TooMany(max)),
    }
}

/// Gives the request a new visitor (the old link dies) and mails the link.
async fn issue_link(
    state: &AppState,
    site: &Site,
    requester: &CurrentUser,
    request: Request,
    txn: &sea_orm::DatabaseTransaction,
    now: DateTime<Utc>,
) -> Result<Request, RequestError> {
    if let Some(old) = &request.visitor_id {
        visitors::deactivate(txn, old, EndedReason::Replaced, now).await?;
    }
    let valid_for = Duration::days(state.settings.visitors.token_expiry_days.into());
    let (first_name, last_name) = crate::invites::split_name(&request.referee_name);
    let email = EmailAddress::parse(&request.referee_email)
        .map_err(|_| DbErr::Custom("a stored referee address is not an e-mail address".into()))?;
    let (visitor, token) = visitors::create(
        txn,
        NewVisitor {
            site_id: site.id,
            scope: Scope::parse(SCOPE).expect("the scope name is valid"),
            first_name,
            last_name,
            email: email.clone(),
            context: Some(serde_json::json!({ "reference_id": request.id })),
            valid_for,
            session_expiry_secs: state.settings.visitors.session_expiry_secs.into(),
            created_by: Some(requester.id),
        },
    )
    .await?;
    let link = tokens::tokenise(
        &format!("{}/references/respond", state.base_url_of(site)),
        &state.settings.visitors.querystring_key,
        &token,
    );
    let mut context = Context::new();
    context.insert("site_name", &site.name);
    context.insert("requester", &requester.display_name);
    context.insert("referee_name", &request.referee_name);
    context.insert("message", &request.message);
    context.insert("link", &link);
    context.insert(
        "valid_until",
        &state.zone().format(visitor.expires_at, DateStyle::Day),
    );
    let mail = Mail::from_template(&state.templates, "reference_request", &context)?;
    state
        .mailer
        .queue_from_site(txn, site, &email, &mail, None, now)
        .await?;
    let mut active: reference_requests::ActiveModel = request.into();
    active.visitor_id = Set(Some(visitor.id));
    active.link_expires_at = Set(visitor.expires_at);
    Ok(active.update(txn).await?)
}

/// A member's own open request, or `None` (also for other people's).
pub async fn find_own(
    state: &AppState,
    requester: &CurrentUser,
    id: i64,
) -> Result<Option<Request>, DbErr> {
    Ok(reference_requests::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|request| request.requester_id == requester.id))
}

/// "Send again": a fresh link; the old one stops working.
pub async fn send_again(
    state: &AppState,
    site: &Site,
    requester: &CurrentUser,
    request: Request,
) -> Result<Request, RequestError> {
    let now = Utc::now();
    let ticket = count_mail(state, site, requester, now).await?;
    let txn = crate::db::write_transaction(&state.db).await?;
    let mut active: reference_requests::ActiveModel = request.into();
    active.status = Set(Status::Requested);
    let request = active.update(&txn).await?;
    let request = issue_link(state, site, requester, request, &txn, now).await?;
    txn.commit().await?;
    ticket.resolve(&state.db, Outcome::Used).await?;
    state.mailer.wake();
    Ok(request)
}

/// Cancels a request: its link stops working at once.
pub async fn cancel(state: &AppState, request: &Request) -> Result<(), DbErr> {
    let txn = crate::db::write_transaction(&state.db).await?;
    reference_requests::Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Cancelled))
        .col_expr(Column::CancelledAt, Expr::value(Some(Utc::now())))
        .filter(Column::Id.eq(request.id))
        .exec(&txn)
        .await?;
    if let Some(visitor_id) = &request.visitor_id {
        visitors::deactivate(&txn, visitor_id, EndedReason::Withdrawn, Utc::now()).await?;
    }
    txn.commit().await
}

/// The request a referee's visitor pass is for.
pub async fn for_visitor(
    state: &AppState,
    visitor: &visitors::CurrentVisitor,
) -> Result<Option<Request>, DbErr> {
    let id = visitor
        .context
        .as_ref()
        .and_then(|context| context.get("reference_id"))
        .and_then(serde_json::Value::as_i64);
    let Some(id) = id else { return Ok(None) };
    Ok(reference_requests::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|request| request.visitor_id.as_deref() == Some(visitor.id.as_str())))
}

/// The referee has followed the link: "requested" becomes "opened".
pub async fn mark_opened(state: &AppState, request: &Request) -> Result<(), DbErr> {
    reference_requests::Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Opened))
        .col_expr(Column::OpenedAt, Expr::value(Some(Utc::now())))
        .filter(Column::Id.eq(request.id))
        .filter(Column::Status.eq(Status::Requested))
        .exec(&state.db)
        .await
        .map(|_| ())
}

pub async fn save_answers(
    state: &AppState,
    request: &Request,
    answers: &Answers,
) -> Result<(), DbErr> {
    reference_requests::Entity::update_many()
        .col_expr(
            Column::Answers,
            Expr::value(serde_json::to_value(answers).unwrap_or_default()),
        )
        .filter(Column::Id.eq(request.id))
        .exec(&state.db)
        .await
        .map(|_| ())
}

/// The referee confirms: the reference is stored, their link stops working,
/// and the member is told by mail. The caller ends the visit in the session.
pub async fn complete(
    state: &AppState,
    site: &Site,
    request: &Request,
    visitor: &visitors::CurrentVisitor,
) -> Result<(), RequestError> {
    let now = Utc::now();
    let requester = crate::entities::users::Entity::find_by_id(request.requester_id)
        .one(&state.db)
        .await?;
    let txn = crate::db::write_transaction(&state.db).await?;
    reference_requests::Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Completed))
        .col_expr(Column::CompletedAt, Expr::value(Some(now)))
        .filter(Column::Id.eq(request.id))
        .exec(&txn)
        .await?;
    visitors::deactivate(&txn, &visitor.id, EndedReason::ReferenceSent, now).await?;
    if let Some(requester) = requester.filter(|user| user.is_active)
        && let Ok(email) = EmailAddress::parse(&requester.email)
    {
        let mut context = Context::new();
        context.insert("site_name", &site.name);
        context.insert("first_name", &requester.first_name);
        context.insert("referee_name", &request.referee_name);
        context.insert(
            "link",
            &format!("{}/references/{}", state.base_url_of(site), request.id),
        );
        let mail = Mail::from_template(&state.templates, "reference_completed", &context)?;
        state
            .mailer
            .queue_from_site(&txn, site, &email, &mail, None, now)
            .await?;
    }
    txn.commit().await?;
    state.mailer.wake();
    Ok(())
}

/// The requests a member asked, newest first.
pub async fn of_requester(
    db: &impl sea_orm::ConnectionTrait,
    user_id: i64,
) -> Result<Vec<Request>, DbErr> {
    use sea_orm::QueryOrder;
    reference_requests::Entity::find()
        .filter(Column::RequesterId.eq(user_id))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .all(db)
        .await
}

/// For an account being deleted: every request the member asked goes, with
/// the referees' visitor links and their visit logs. Returns the referees'
/// addresses (their mail about these requests goes too).
pub async fn erase_of_requester(
    db: &impl sea_orm::ConnectionTrait,
    user_id: i64,
) -> Result<Vec<String>, DbErr> {
    let referees = of_requester(db, user_id)
        .await?
        .into_iter()
        .map(|request| request.referee_email)
        .filter(|email| !email.is_empty())
        .collect();
    reference_requests::Entity::delete_many()
        .filter(Column::RequesterId.eq(user_id))
        .exec(db)
        .await?;
    visitors::delete_created_by(db, user_id, SCOPE).await?;
    Ok(referees)
}

/// Erases the referee's personal data from requests that expired or were
/// cancelled more than `retention_days` ago (for `purge`).
pub async fn erase_old(
    db: &impl sea_orm::ConnectionTrait,
    retention_days: u32,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    use sea_orm::Condition;
    let cutoff = now - Duration::days(retention_days.into());
    let old = Condition::all().add(Column::RefereeEmail.ne("")).add(
        Condition::any()
            .add(
                Condition::all()
                    .add(Column::Status.eq(Status::Cancelled))
                    .add(Column::CancelledAt.lt(cutoff)),
            )
            .add(
                Condition::all()
                    .add(Column::Status.is_in([Status::Requested, Status::Opened]))
                    .add(Column::LinkExpiresAt.lt(cutoff)),
            ),
    );
    let count = reference_requests::Entity::find()
        .filter(old.clone())
        .count(db)
        .await?;
    if !dry_run {
        reference_requests::Entity::update_many()
            .col_expr(Column::RefereeName, Expr::value(""))
            .col_expr(Column::RefereeEmail, Expr::value(""))
            .col_expr(Column::Message, Expr::value(""))
            .col_expr(
                Column::Answers,
                Expr::value(Option::<serde_json::Value>::None),
            )
            .filter(old)
            .exec(db)
            .await?;
    }
    Ok(count)
}
