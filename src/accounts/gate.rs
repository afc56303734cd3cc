//! The login gate: every password or code login passes it before anything
//! is judged. The attempt is recorded first (so limits hold under bursts),
//! then refused with 429 when over a limit, or sent back for the captcha when
//! one is due and not answered; otherwise the caller judges it and resolves
//! the ticket with the outcome.

use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use chrono::Utc;

use sea_orm::{DbBackend, FromQueryResult, QueryTrait};

use super::{captcha, throttle, users};
use crate::AppState;
use crate::attempts::{self, Admission, Attempt, Kind, Outcome, Ticket};
use crate::entities::users::Model as User;
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
    let (ticket, failures) = admit(state, attempt).await?;
    ask_or_judge(state, ticket, &failures, session, answer).await
}

/// `enter` for a login naming an account by `login` (username or e-mail):
/// `attempt` gets the account it is counted under, and the member `login`
/// names comes back too. On SQLite the lookup goes with the admission, in
/// one round trip (`attempts::admit_naming`).
pub async fn enter_by_name(
    state: &AppState,
    attempt: &mut Attempt,
    login: &str,
    session: &TypedSession,
    answer: &str,
) -> AppResult<(Entry, Option<User>)> {
    let backend = state.db.get_database_backend();
    let sqlite_lookup = users::login_candidates(attempt.site_id, login)
        .zip(throttle::account_key_sql(attempt.site_id, login))
        .filter(|_| backend == DbBackend::Sqlite);
    let (admission, user) = match sqlite_lookup {
        Some((candidates, key)) => {
            let limits = limits_for(state, attempt);
            let lookup = candidates.build(backend);
            let named = attempts::admit_naming(
                &state.db,
                &state.lane,
                attempt,
                key,
                lookup,
                &limits,
                Utc::now(),
            )
            .await?;
            attempt.account = named.account;
            let user = named
                .rows
                .first()
                .map(|row| User::from_query_result(row, ""));
            (named.admission, user.transpose()?)
        }
        None => {
            let (account, user) = throttle::account_of(&state.db, attempt.site_id, login).await?;
            attempt.account = account;
            let limits = limits_for(state, attempt);
            let admission =
                attempts::admit(&state.db, &state.lane, attempt, &limits, Utc::now()).await?;
            (admission, user)
        }
    };
    let (ticket, failures) = admitted(state, admission)?;
    let entry = ask_or_judge(state, ticket, &failures, session, answer).await?;
    Ok((entry, user))
}

/// Lets an admitted attempt be judged unless the captcha is due; then the
/// answer given decides (see `Entry`).
async fn ask_or_judge(
    state: &AppState,
    ticket: Ticket,
    failures: &[u32],
    session: &TypedSession,
    answer: &str,
) -> AppResult<Entry> {
    let security = &state.settings.security;
    if !throttle::captcha_due(security, failures) {
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
    let limits = limits_for(state, attempt);
    admitted(
        state,
        attempts::admit(&state.db, &state.lane, attempt, &limits, Utc::now()).await?,
    )
}

fn limits_for(state: &AppState, attempt: &Attempt) -> Vec<attempts::Limit> {
    throttle::Limits::from(&state.settings.security).for_kind(attempt.kind)
}

/// An admission's ticket, or 429 when refused.
fn admitted(state: &AppState, admission: Admission) -> AppResult<(Ticket, Vec<u32>)> {
    match admission {
        Admission::Refused { retry_after } => Err(AppError::TooManyAttempts {
            retry_after,
            zone: state.zone(),
        }),
        Admission::Admitted { ticket, failures } => Ok((ticket, failures)),
    }
}

/// Whether the page that carries the login forms must ask the captcha now,
/// because the next attempt like `attempt` will need it.
pub async fn captcha_for_next(state: &AppState, attempt: &Attempt) -> AppResult<bool> {
    let due = throttle::captcha_due_next(&state.db, &state.settings.security, attempt, Utc::now())
        .await?;
    state.captcha_hints.remember(attempt, due);
    Ok(due)
}

/// As `captcha_for_next`, for the login page's first view, from a recent
/// answer when there is one: the page only shows the question early (every
/// attempt is still judged by `enter`), so an answer a few seconds old is
/// good enough, and most views cost no query.
pub async fn captcha_for_page(state: &AppState, attempt: &Attempt) -> AppResult<bool> {
    match state.captcha_hints.recall(attempt) {
        Some(due) => Ok(due),
        None => captcha_for_next(state, attempt).await,
    }
}

/// Recent answers of `captcha_for_next`, by site, address and kind of
/// attempt (the login page asks before any account is named), with when
/// each was given.
pub struct CaptchaHints(quick_cache::sync::Cache<(i64, String, Kind), (bool, Instant)>);

/// How long a hint is trusted.
const HINT_LIFE: Duration = Duration::from_secs(5);

impl Default for CaptchaHints {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(100_000))
    }
}

impl CaptchaHints {
    fn key(attempt: &Attempt) -> Option<(i64, String, Kind)> {
        attempt
            .account
            .is_none()
            .then(|| (attempt.site_id, attempt.ip.clone(), attempt.kind))
    }

    /// Keeps an address's answer; an answer for an account (given after one
    /// of its attempts failed) makes the address's answers stale instead.
    fn remember(&self, attempt: &Attempt, due: bool) {
        match Self::key(attempt) {
            Some(key) => self.0.insert(key, (due, Instant::now())),
            None => {
                for kind in [Kind::Password, Kind::Code] {
                    self.0.remove(&(attempt.site_id, attempt.ip.clone(), kind));
                }
            }
        }
    }

    fn recall(&self, attempt: &Attempt) -> Option<bool> {
        let (due, at) = self.0.get(&Self::key(attempt)?)?;
        (at.elapsed() < HINT_LIFE).then_some(due)
    }
}
