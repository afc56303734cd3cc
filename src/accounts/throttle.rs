//! Limits on login attempts, kept in `login_attempts` so they hold across
//! restarts and instances: per client address (all forms), per account
//! (username or e-mail named in a form), and invitation-code guesses per
//! address per hour. Refused attempts are not recorded, so a locked address
//! gets back exactly one try for each failure that leaves the window.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use crate::entities::login_attempts::{self, Column};
use crate::settings::SecuritySettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Password,
    Code,
    Reset,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Password => "password",
            Kind::Code => "code",
            Kind::Reset => "reset",
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; `failures` is the larger of the account's and the address's
    /// recent failures (for captcha escalation).
    Allowed { failures: u32 },
    /// Refuse; the limit lifts after this long.
    Locked { retry_after: Duration },
}

/// How an account is named in the table: trimmed, lower-case, bounded.
pub fn account_key(login: &str) -> Option<String> {
    let key: String = login
        .trim()
        .to_ascii_lowercase()
        .chars()
        .take(254)
        .collect();
    (!key.is_empty()).then_some(key)
}

/// When the `max`-limited set of failures in `query` (since `since`) lets
/// the next attempt through: `None` if it already does.
async fn lock_ends(
    db: &impl ConnectionTrait,
    query: Select<login_attempts::Entity>,
    max: u32,
    since: DateTime<Utc>,
    window: Duration,
) -> Result<(u32, Option<DateTime<Utc>>), DbErr> {
    let query = query.filter(Column::CreatedAt.gt(since));
    let count = u32::try_from(query.clone().count(db).await?).unwrap_or(u32::MAX);
    if count < max {
        return Ok((count, None));
    }
    // The lock lifts when enough of the oldest failures have left the window.
    let oldest_that_matters: Option<DateTime<Utc>> = query
        .select_only()
        .column(Column::CreatedAt)
        .order_by_asc(Column::CreatedAt)
        .offset(u64::from(count - max))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok((count, oldest_that_matters.map(|at| at + window)))
}

pub async fn check(
    db: &impl ConnectionTrait,
    limits: Limits,
    site_id: i64,
    kind: Kind,
    ip: &str,
    account: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Verdict, DbErr> {
    let since = now - limits.window;
    // Reset requests are counted apart from failed logins (per address and
    // per account), so asking for reset links cannot lock anyone out of
    // logging in, nor bring the login captcha.
    let reset = Kind::Reset.as_str();
    let same_family = if kind == Kind::Reset {
        Column::Kind.eq(reset)
    } else {
        Column::Kind.ne(reset)
    };
    let by_ip = login_attempts::Entity::find()
        .filter(Column::Ip.eq(ip))
        .filter(same_family.clone());
    let (ip_failures, mut until) =
        lock_ends(db, by_ip, limits.ip_max, since, limits.window).await?;
    let mut failures = ip_failures;
    if let Some(account) = account {
        let by_account = login_attempts::Entity::find()
            .filter(Column::SiteId.eq(site_id))
            .filter(Column::Account.eq(account))
            .filter(same_family);
        let (account_failures, account_until) =
            lock_ends(db, by_account, limits.account_max, since, limits.window).await?;
        failures = failures.max(account_failures);
        until = until.max(account_until);
    }
    if kind == Kind::Code {
        let hour = Duration::hours(1);
        let guesses = login_attempts::Entity::find()
            .filter(Column::Ip.eq(ip))
            .filter(Column::Kind.eq(Kind::Code.as_str()));
        let (_, code_until) =
            lock_ends(db, guesses, limits.code_per_hour, now - hour, hour).await?;
        until = until.max(code_until);
    }
    Ok(match until {
        Some(until) if until > now => Verdict::Locked {
            retry_after: until - now,
        },
        _ => Verdict::Allowed { failures },
    })
}

pub async fn record_failure(
    db: &impl ConnectionTrait,
    site_id: i64,
    kind: Kind,
    ip: &str,
    account: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    login_attempts::ActiveModel {
        site_id: Set(site_id),
        kind: Set(kind.as_str().to_owned()),
        ip: Set(ip.chars().take(64).collect()),
        account: Set(account.map(str::to_owned)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// A successful login clears the account's counter (not the address's).
pub async fn clear_account(
    db: &impl ConnectionTrait,
    site_id: i64,
    account: &str,
) -> Result<(), DbErr> {
    login_attempts::Entity::delete_many()
        .filter(Column::SiteId.eq(site_id))
        .filter(Column::Account.eq(account))
        .exec(db)
        .await
        .map(|_| ())
}

/// Removes rows older than every window (for `purge`).
pub async fn delete_older_than(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    let old = login_attempts::Entity::find().filter(Column::CreatedAt.lt(cutoff));
    let count = old.count(db).await?;
    if !dry_run {
        login_attempts::Entity::delete_many()
            .filter(Column::CreatedAt.lt(cutoff))
            .exec(db)
            .await?;
    }
    Ok(count)
}
