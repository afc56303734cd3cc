//! The login gate: every password or code login passes it before anything
//! is judged. The attempt is recorded first (so limits hold under bursts),
//! then refused with 429 when over a limit, or sent back for the captcha when
//! one is due and not answered; otherwise the caller judges it and resolves
//! the ticket with the outcome.

use actix_web::HttpRequest;
use chrono::Utc;

use super::{captcha, throttle};
use crate::AppState;
use crate::attempts::{self, Admission, Attempt, Kind, Outcome, Ticket};
use crate::error::{AppError, AppResult};
use crate::web::client::client_ip;
use crate::web::session::TypedSession;

/// What the gate says about an attempt.
pub enum Entry {
    /// Judge it, then resolve the ticket with what came of it.
    Judge(Ticket),
    /// A captcha was due and missing or wrong: nothing was judged or counted.
    AskCaptcha(&'static str),
}

/// An attempt from this request's client.
pub fn attempt(
    req: &HttpRequest,
    state: &AppState,
    site_id: i64,
    kind: Kind,
    account: Option<String>,
) -> Attempt {
    Attempt {
        kind,
        site_id,
        ip: client_ip(req, &state.settings.server.trusted_proxies),
        account,
    }
}

pub async fn enter(
    state: &AppState,
    attempt: &Attempt,
    session: &TypedSession,
    answer: &str,
) -> AppResult<Entry> {
    let security = &state.settings.security;
    let (ticket, failures) = admit(state, attempt).await?;
    if !throttle::captcha_due(security, &failures) {
        return Ok(Entry::Judge(ticket));
    }
    // A question answers one attempt, right or wrong: a wrong answer spends
    // it too (in an uncounted row), so replaying a copy of the cookie cannot
    // try the other answers.
    let message = match captcha::check(session.take_captcha_challenge(), answer) {
        captcha::Answer::Right(nonce) => {
            if ticket.spend_challenge(&state.db, &nonce).await? {
                return Ok(Entry::Judge(ticket));
            }
            ticket.resolve(&state.db, Outcome::Unanswered).await?;
            WRONG_ANSWER
        }
        captcha::Answer::Wrong(nonce) => {
            if ticket.spend_challenge(&state.db, &nonce).await? {
                ticket.resolve(&state.db, Outcome::Unanswered).await?;
            } else {
                ticket.withdraw(&state.db).await?;
            }
            WRONG_ANSWER
        }
        captcha::Answer::Missing => {
            ticket.withdraw(&state.db).await?;
            "Answer this question to show you are a person; then log in again."
        }
        captcha::Answer::NoQuestion => {
            ticket.withdraw(&state.db).await?;
            if answer.trim().is_empty() {
                "Answer this question to show you are a person; then log in again."
            } else {
                WRONG_ANSWER
            }
        }
    };
    Ok(Entry::AskCaptcha(message))
}

const WRONG_ANSWER: &str = "That answer was not right. Here is a new question.";

/// Records `attempt` against the limits of its kind; over one, 429.
pub async fn admit(state: &AppState, attempt: &Attempt) -> AppResult<(Ticket, Vec<u32>)> {
    let limits = throttle::Limits::from(&state.settings.security).for_kind(attempt.kind);
    match attempts::admit(&state.db, attempt, &limits, Utc::now()).await? {
        Admission::Refused { retry_after } => Err(AppError::TooManyAttempts { retry_after }),
        Admission::Admitted { ticket, failures } => Ok((ticket, failures)),
    }
}

/// Whether the page that carries the login forms must ask the captcha now,
/// because the next attempt like `attempt` will need it.
pub async fn captcha_for_next(state: &AppState, attempt: &Attempt) -> AppResult<bool> {
    Ok(
        throttle::captcha_due_next(&state.db, &state.settings.security, attempt, Utc::now())
            .await?,
    )
}
