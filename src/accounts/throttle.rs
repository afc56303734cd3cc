//! The limits on logging in and on asking for reset links, and when the
//! captcha is asked: the policy over `attempts` (which does the counting).
//!
//! Failed logins (password and code forms alike) are counted per account
//! and per client address within `window_minutes`; invitation codes tried
//! from one address are also capped per hour. Reset links asked for are
//! counted apart, so that asking for them can neither lock anyone out of
//! logging in nor bring the login captcha.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, Func, SubQueryStatement};
use sea_orm::{ConnectionTrait, DbErr, QuerySelect, QueryTrait};

use super::users;
use crate::attempts::{self, Attempt, Kind, Limit, Per};
use crate::entities::users::{self as user_entity, Model as User};
use crate::settings::{CaptchaMode, SecuritySettings};

const LOGINS: &[Kind] = &[Kind::Password, Kind::Code];
const CODES: &[Kind] = &[Kind::Code];
const RESETS: &[Kind] = &[Kind::Reset];

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub account_max: u32,
    pub ip_max: u32,
    pub window: Duration,
    pub code_per_hour: u32,
}

impl From<&SecuritySettings> for Limits {
    fn from(settings: &SecuritySettings) -> Self {
        Self {
            account_max: settings.account_max_failures,
            ip_max: settings.ip_max_failures,
            window: Duration::minutes(settings.window_minutes.into()),
            code_per_hour: settings.code_guesses_per_hour,
        }
    }
}

/// Indexes into `Limits::for_kind`'s list, for reading counts back.
pub const ACCOUNT: usize = 0;
pub const ADDRESS: usize = 1;

impl Limits {
    /// The limits an attempt of `kind` must pass: the account's first, then
    /// the address's (see `ACCOUNT`, `ADDRESS`), then any of its own.
    pub fn for_kind(&self, kind: Kind) -> Vec<Limit> {
        let family = if kind == Kind::Reset { RESETS } else { LOGINS };
        let mut limits = vec![
            Limit {
                per: Per::Account,
                kinds: family,
                max: self.account_max,
                window: self.window,
            },
            Limit {
                per: Per::Address,
                kinds: family,
                max: self.ip_max,
                window: self.window,
            },
        ];
        if kind == Kind::Code {
            limits.push(Limit {
                per: Per::Address,
                kinds: CODES,
                max: self.code_per_hour,
                window: Duration::hours(1),
            });
        }
        limits
    }
}

/// How an account is counted: `#<id>` when the name (username or e-mail, in
/// any case) is an account of the site, so that `fred`, `Fred` and
/// `fred@example.org` share one counter; otherwise `name:` and the name
/// trimmed and lower-cased the way accounts are looked up (ASCII only), so
/// that no typed name can land on an account's counter (`#1`) and a name
/// counts alike whether or not its account exists.
pub async fn account_key(
    db: &impl ConnectionTrait,
    site_id: i64,
    login: &str,
) -> Result<Option<String>, DbErr> {
    Ok(account_of(db, site_id, login).await?.0)
}

/// `account_key`, with the account it found (so a login need not look it up
/// twice).
pub async fn account_of(
    db: &impl ConnectionTrait,
    site_id: i64,
    login: &str,
) -> Result<(Option<String>, Option<User>), DbErr> {
    let login = login.trim();
    if login.is_empty() {
        return Ok((None, None));
    }
    Ok(match users::find_for_login(db, site_id, login).await? {
        Some(user) => (Some(attempts::account_of_user(user.id)), Some(user)),
        None => (Some(unknown_account(login)), None),
    })
}

/// `account_key` as SQL, for the database to work out as it records an
/// attempt (SQLite: a scalar subquery gives its first row, here the member
/// `login` names); `None` for a blank name.
pub fn account_key_sql(site_id: i64, login: &str) -> Option<Expr> {
    let known = users::login_candidates(site_id, login)?
        .select_only()
        .expr(attempts::account_of_user_sql(Expr::col(
            user_entity::Column::Id,
        )))
        .into_query();
    Some(
        Func::coalesce([
            Expr::from(SubQueryStatement::from(known)),
            Expr::val(unknown_account(login.trim())),
        ])
        .into(),
    )
}

/// The key of a name that is no account of the site (see `account_key`).
fn unknown_account(login: &str) -> String {
    format!(
        "name:{}",
        login
            .to_ascii_lowercase()
            .chars()
            .take(240)
            .collect::<String>()
    )
}

/// Whether an attempt facing these counts (the account's, the address's:
/// failures other than its own) must answer the captcha.
pub fn captcha_due(settings: &SecuritySettings, counts: &[u32]) -> bool {
    let count = |index: usize| counts.get(index).copied().unwrap_or(0);
    match settings.captcha {
        CaptchaMode::Off => false,
        CaptchaMode::Always => true,
        CaptchaMode::AfterFailures => {
            count(ACCOUNT) >= settings.captcha_after_failures
                || count(ADDRESS) >= settings.captcha_after_address_failures
        }
    }
}

/// Whether the next login attempt like `attempt` will need the captcha, so
/// that the page carrying the form asks it already.
pub async fn captcha_due_next(
    db: &impl ConnectionTrait,
    settings: &SecuritySettings,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    match settings.captcha {
        CaptchaMode::Off => Ok(false),
        CaptchaMode::Always => Ok(true),
        CaptchaMode::AfterFailures => {
            let limits = Limits::from(settings).for_kind(attempt.kind);
            let failures = attempts::failures(db, attempt, &limits, now).await?;
            Ok(captcha_due(settings, &failures))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: CaptchaMode) -> SecuritySettings {
        SecuritySettings {
            account_max_failures: 5,
            ip_max_failures: 20,
            window_minutes: 15,
            code_guesses_per_hour: 20,
            captcha: mode,
            captcha_after_failures: 3,
            captcha_after_address_failures: 10,
        }
    }

    #[test]
    fn the_captcha_comes_after_three_failures_of_an_account_or_ten_of_an_address() {
        let after = settings(CaptchaMode::AfterFailures);
        assert!(!captcha_due(&after, &[2, 9]));
        assert!(captcha_due(&after, &[3, 3]));
        assert!(captcha_due(&after, &[0, 10]));
        assert!(!captcha_due(&after, &[]));
        assert!(captcha_due(&settings(CaptchaMode::Always), &[]));
        assert!(!captcha_due(&settings(CaptchaMode::Off), &[99, 99]));
    }

    #[test]
    fn code_attempts_also_meet_the_hourly_cap() {
        let limits = Limits::from(&settings(CaptchaMode::Off));
        assert_eq!(limits.for_kind(Kind::Password).len(), 2);
        let code = limits.for_kind(Kind::Code);
        assert_eq!(code.len(), 3);
        assert_eq!(code[2].window, Duration::hours(1));
        assert_eq!(limits.for_kind(Kind::Reset)[ADDRESS].kinds, RESETS);
    }
}
