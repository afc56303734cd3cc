//! Attempt limits kept in the `login_attempts` table, so that they hold
//! across restarts and across instances sharing one database, and when many
//! requests arrive at the same instant.
//!
//! An attempt is admitted by writing it ("pending") and then counting the
//! rows in the window up to its own, one key's admissions taking turns:
//! - PostgreSQL: in one short transaction that first takes a
//!   transaction-level advisory lock for each address and account; over a
//!   limit, it rolls back and nothing is kept.
//! - SQLite: the insert takes the database's single write lock, so rows
//!   are written one at a time in id order, and the count stops at the
//!   attempt's own id; insert and count go in one round trip, with no
//!   transaction (see `admit_in_one_command`). Over a limit, the row is
//!   deleted at once.
//!
//! An admitted attempt is judged afterwards (never with a transaction or a
//! lock held across a password hash). So of any number of simultaneous
//! attempts exactly as many as the limit allows get through, on any number
//! of instances.
//!
//! A judged attempt marks its own row with what came of it. A limit that
//! restarts after a success counts only the rows written after the latest
//! success, so nothing has to be cleared (and no clearing can race a
//! concurrent failure).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{
    BinOper, Expr, Func, Query, SelectStatement, SubQueryStatement, UnionType,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, SqlErr, Statement,
};
use sha2::{Digest, Sha256};

use crate::db::Lane;
use crate::entities::login_attempts::{self, Column};

pub use crate::entities::login_attempts::{Kind, Outcome};

/// The outcomes a limit counts.
const COUNTED: [Outcome; 3] = [Outcome::Pending, Outcome::Failed, Outcome::Used];

/// Whose attempts a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// The client address.
    Address,
    /// The account named (on the attempt's site); counting restarts after
    /// the account's latest success.
    Account,
}

/// At most `max` counted attempts of `kinds` per `per` within `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub per: Per,
    pub kinds: &'static [Kind],
    pub max: u32,
    pub window: Duration,
}

/// How a known account is named in `login_attempts.account`.
pub fn account_of_user(user_id: i64) -> String {
    format!("#{user_id}")
}

/// `account_of_user` in SQL (SQLite's), for a user id column.
pub fn account_of_user_sql(user_id: Expr) -> Expr {
    Expr::val("#").binary(BinOper::Custom("||"), user_id)
}

/// One attempt: what, on which site, from where, naming which account.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub kind: Kind,
    pub site_id: i64,
    pub ip: String,
    pub account: Option<String>,
}

impl Attempt {
    /// The account key as an SQL value, for the queries that count it.
    fn account_value(&self) -> Option<Expr> {
        self.account.clone().map(Expr::val)
    }
}

#[derive(Debug)]
pub enum Admission {
    /// Go ahead and judge it; `failures[i]` is what `limits[i]` saw for
    /// captcha escalation (see `failures`).
    Admitted { ticket: Ticket, failures: Vec<u32> },
    /// Over a limit: nothing is judged and nothing kept.
    Refused { retry_after: Duration },
}

/// An admitted attempt's row, to be marked with its outcome.
#[derive(Debug)]
#[must_use = "an admitted attempt stays pending (and counts) until it is resolved"]
pub struct Ticket {
    id: i64,
}

/// Records `attempt` and judges it against `limits` (see the module comment).
pub async fn admit(
    db: &DatabaseConnection,
    lane: &Lane,
    attempt: &Attempt,
    limits: &[Limit],
    now: DateTime<Utc>,
) -> Result<Admission, DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        let naming = Naming {
            recorded: Expr::val(attempt.account.clone()),
            counted: attempt.account_value(),
        };
        Ok(
            admit_in_one_command(db, lane, attempt, naming, None, limits, now)
                .await?
                .admission,
        )
    } else {
        admit_in_transaction(db, attempt, limits, now).await
    }
}

/// What `admit_naming` gives back.
#[derive(Debug)]
pub struct Named {
    pub admission: Admission,
    /// The account the attempt was recorded under.
    pub account: Option<String>,
    /// The rows of the query run with the admission.
    pub rows: Vec<QueryResult>,
}

/// `admit` for an attempt whose account the database names as it records
/// it (SQLite only): `account` is SQL for its key (such as a lookup by the
/// name typed), and `lookup` a query run in the same round trip, whose rows
/// come back too. So a login's account lookup and its admission cost one
/// round trip.
pub async fn admit_naming(
    db: &DatabaseConnection,
    lane: &Lane,
    attempt: &Attempt,
    account: Expr,
    lookup: Statement,
    limits: &[Limit],
    now: DateTime<Utc>,
) -> Result<Named, DbErr> {
    // Counted by the key its own row got.
    let naming = Naming {
        recorded: account,
        counted: Some(recorded_account()),
    };
    admit_in_one_command(db, lane, attempt, naming, Some(lookup), limits, now).await
}

/// PostgreSQL: the insert and the tally in one transaction, after the
/// keys' advisory locks; a refused attempt rolls back.
async fn admit_in_transaction(
    db: &DatabaseConnection,
    attempt: &Attempt,
    limits: &[Limit],
    now: DateTime<Utc>,
) -> Result<Admission, DbErr> {
    let txn = crate::db::write_transaction(db).await?;
    lock_keys(&txn, attempt, limits).await?;
    let row = new_row(attempt, now).insert(&txn).await?;
    let account = attempt.account_value();
    let tallies = match tally_query(attempt, account, limits, now, Some(Expr::val(row.id))) {
        Some(query) => read_tallies(txn.query_all(&query).await?, limits.len())?,
        None => nothing_counted(limits.len()),
    };
    let judged = judge(&txn, attempt, limits, now, row.id, tallies).await?;
    match judged {
        Admission::Refused { .. } => txn.rollback().await?,
        Admission::Admitted { .. } => txn.commit().await?,
    }
    Ok(judged)
}

/// How the SQLite path records and counts an attempt's account: the SQL
/// for the value it records, and for the key its account limit counts
/// (`None`: the attempt names no account).
struct Naming {
    recorded: Expr,
    counted: Option<Expr>,
}

/// The id of the row this connection inserted last (SQLite).
fn own_row_id() -> Expr {
    Expr::cust("last_insert_rowid()")
}

/// The account that row was recorded under (SQLite).
fn recorded_account() -> Expr {
    let account = Query::select()
        .column(Column::Account)
        .from(login_attempts::Entity)
        .and_where(Expr::col(Column::Id).eq(own_row_id()))
        .take();
    Expr::from(SubQueryStatement::from(account))
}

/// SQLite: the insert returns its row's id, its account and the tally, as
/// one statement sent with the lookup (`db::query_together`): one round
/// trip to a connection's worker thread instead of four (begin, insert,
/// count, commit), and one statement's result to wake for instead of two.
/// SQLite works out RETURNING once the row is in, so the tally counts the
/// rows up to its own id. Each insert takes the database's single write
/// lock in turn, so attempts are inserted one at a time, and row ids follow
/// that order: each attempt sees exactly the ones before it. A refused
/// attempt's row is then deleted: until then it counts for attempts after
/// it, which can only make one of those wait sooner, never let one more
/// through.
async fn admit_in_one_command(
    db: &DatabaseConnection,
    lane: &Lane,
    attempt: &Attempt,
    naming: Naming,
    lookup: Option<Statement>,
    limits: &[Limit],
    now: DateTime<Utc>,
) -> Result<Named, DbErr> {
    let backend = db.get_database_backend();
    let mut insert = Query::insert()
        .into_table(login_attempts::Entity)
        .columns([
            Column::SiteId,
            Column::Kind,
            Column::Ip,
            Column::Account,
            Column::CreatedAt,
            Column::Outcome,
        ])
        .values_panic([
            Expr::val(attempt.site_id),
            Expr::val(attempt.kind),
            Expr::val(stored_ip(&attempt.ip)),
            naming.recorded,
            Expr::val(now),
            Expr::val(Outcome::Pending),
        ])
        .take();
    // The tally's rows as one JSON array of [limit index, counted, failed].
    let tally =
        tally_query(attempt, naming.counted, limits, now, Some(own_row_id())).map(|tally| {
            let rows = Query::select()
                .expr(Expr::cust(
                    "json_group_array(json_array(limit_index, counted, failed))",
                ))
                .from_subquery(tally, "tally")
                .take();
            Expr::from(SubQueryStatement::from(rows))
        });
    let tallied = tally.is_some();
    let returned = [Expr::col(Column::Id), Expr::col(Column::Account)];
    insert.returning(Query::returning().exprs(returned.into_iter().chain(tally)));
    let statements = [backend.build(&insert)].into_iter().chain(lookup);
    let mut rows = crate::db::query_together(db, lane, statements).await?;
    if rows.is_empty() {
        return Err(DbErr::Custom("the attempt's row was not returned".into()));
    }
    let own = rows.remove(0);
    let own_id: i64 = own.try_get_by_index(0)?;
    let named = Attempt {
        account: own.try_get_by_index(1)?,
        ..attempt.clone()
    };
    let tallies = if tallied {
        tallies_from_json(&own.try_get_by_index::<String>(2)?, limits.len())?
    } else {
        nothing_counted(limits.len())
    };
    let admission = judge(db, &named, limits, now, own_id, tallies).await?;
    if let Admission::Refused { .. } = admission {
        Ticket { id: own_id }.withdraw(db).await?;
    }
    Ok(Named {
        admission,
        account: named.account,
        rows,
    })
}

/// What a limit counts for an attempt: rows, and judged failures among them.
type Tally = (u32, u32);

/// A pending attempt's row.
fn new_row(attempt: &Attempt, now: DateTime<Utc>) -> login_attempts::ActiveModel {
    login_attempts::ActiveModel {
        site_id: Set(attempt.site_id),
        kind: Set(attempt.kind),
        ip: Set(stored_ip(&attempt.ip)),
        account: Set(attempt.account.clone()),
        created_at: Set(now),
        outcome: Set(Outcome::Pending),
        captcha_nonce: Set(None),
        ..Default::default()
    }
}

/// Admits or refuses the attempt whose row is `own_id`, from what each of
/// `limits` counted with it (`tallies`).
async fn judge(
    db: &impl ConnectionTrait,
    attempt: &Attempt,
    limits: &[Limit],
    now: DateTime<Utc>,
    own_id: i64,
    tallies: Vec<Tally>,
) -> Result<Admission, DbErr> {
    let mut failures = Vec::with_capacity(limits.len());
    let mut retry_after: Option<Duration> = None;
    for (limit, (count, failed)) in limits.iter().zip(tallies) {
        failures.push(escalation(limit, count.saturating_sub(1), failed));
        let account = attempt.account_value();
        if count > limit.max
            && let Some(rows) = counted_rows(attempt, account, limit, now)
        {
            let rows = rows.filter(Column::Id.lte(own_id));
            let wait = wait_until_admitted(db, rows, count, limit, now, own_id).await?;
            retry_after = Some(retry_after.map_or(wait, |longest| longest.max(wait)));
        }
    }
    Ok(match retry_after {
        Some(retry_after) => Admission::Refused { retry_after },
        None => Admission::Admitted {
            ticket: Ticket { id: own_id },
            failures,
        },
    })
}

/// On PostgreSQL, serialises admissions per address and per account with
/// advisory locks held until the transaction ends (taken in a fixed order,
/// so two attempts never wait on each other). SQLite needs none: its one
/// write lock, taken by the insert, already serialises them.
async fn lock_keys(
    txn: &DatabaseTransaction,
    attempt: &Attempt,
    limits: &[Limit],
) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    if backend != DbBackend::Postgres {
        return Ok(());
    }
    let mut keys: Vec<i64> = limits
        .iter()
        .filter_map(|limit| match limit.per {
            Per::Address => Some(format!("address {}", stored_ip(&attempt.ip))),
            Per::Account => attempt
                .account
                .as_ref()
                .map(|account| format!("account {} {account}", attempt.site_id)),
        })
        .map(|key| lock_id(&key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

/// A 64-bit advisory lock id for a key (the first bytes of its SHA-256).
fn lock_id(key: &str) -> i64 {
    let digest = Sha256::digest(format!("gatehouse/attempts/{key}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// What counts towards the captcha: for an account, every other attempt in
/// the window, judged or still being judged (a burst at one account is
/// itself a sign); for an address, judged failures only, so that people
/// behind one address logging in at the same moment do not bring the
/// question on each other.
fn escalation(limit: &Limit, others: u32, failed: u32) -> u32 {
    match limit.per {
        Per::Account => others,
        Per::Address => failed,
    }
}

/// What each limit sees now for captcha escalation (see `escalation`),
/// without recording an attempt: to decide what a form should ask before
/// anything is sent.
pub async fn failures(
    db: &impl ConnectionTrait,
    attempt: &Attempt,
    limits: &[Limit],
    now: DateTime<Utc>,
) -> Result<Vec<u32>, DbErr> {
    let tallies = tallies(db, attempt, limits, now).await?;
    Ok(limits
        .iter()
        .zip(tallies)
        .map(|(limit, (count, failed))| escalation(limit, count, failed))
        .collect())
}

/// For each of `limits`, the number of rows it counts for `attempt` and how
/// many of them are judged failures; (0, 0) where it does not apply.
async fn tallies(
    db: &impl ConnectionTrait,
    attempt: &Attempt,
    limits: &[Limit],
    now: DateTime<Utc>,
) -> Result<Vec<Tally>, DbErr> {
    let account = attempt.account_value();
    match tally_query(attempt, account, limits, now, None) {
        Some(query) => read_tallies(db.query_all(&query).await?, limits.len()),
        None => Ok(nothing_counted(limits.len())),
    }
}

/// The query behind `tallies`: one row per limit that applies, in one query
/// (a UNION ALL), because each round trip is a good part of what an attempt
/// costs besides its hash. `account` is SQL for the account key an account
/// limit counts (`None`: the attempt names none). `None` when no limit
/// applies. With `own_id` (SQL for the attempt's own row id), only rows up
/// to it count.
fn tally_query(
    attempt: &Attempt,
    account: Option<Expr>,
    limits: &[Limit],
    now: DateTime<Utc>,
    own_id: Option<Expr>,
) -> Option<SelectStatement> {
    let mut parts = limits.iter().enumerate().filter_map(|(index, limit)| {
        let mut rows = counted_rows(attempt, account.clone(), limit, now)?;
        if let Some(own_id) = &own_id {
            rows = rows.filter(Expr::col(Column::Id).lte(own_id.clone()));
        }
        let failed = Expr::expr(Func::sum(
            Expr::case(Column::Outcome.eq(Outcome::Failed), 1).finally(0),
        ));
        let part = rows
            .select_only()
            .column_as(Expr::val(index as i64), "limit_index")
            .column_as(Expr::cust("COUNT(*)"), "counted")
            .column_as(failed, "failed");
        Some(part.into_query())
    });
    let mut query = parts.next()?;
    query.unions(parts.map(|part| (UnionType::All, part)));
    Some(query)
}

/// Reads `tally_query`'s rows for `count` limits.
fn read_tallies(rows: Vec<QueryResult>, count: usize) -> Result<Vec<Tally>, DbErr> {
    let rows = rows.into_iter().map(|row| {
        Ok((
            row.try_get("", "limit_index")?,
            row.try_get("", "counted")?,
            row.try_get("", "failed")?,
        ))
    });
    Ok(per_limit(rows.collect::<Result<Vec<_>, DbErr>>()?, count))
}

/// Reads `tally_query`'s rows for `count` limits, as SQLite's
/// `json_group_array` gave them back.
fn tallies_from_json(json: &str, count: usize) -> Result<Vec<Tally>, DbErr> {
    let rows = serde_json::from_str(json)
        .map_err(|err| DbErr::Custom(format!("the tally did not read: {err}")))?;
    Ok(per_limit(rows, count))
}

/// What `count` limits tally when none counted anything (or none applies).
fn nothing_counted(count: usize) -> Vec<Tally> {
    vec![(0, 0); count]
}

/// Each limit's (count, failed) from the tally's (limit index, counted,
/// failed) rows; a limit without a row counts nothing.
fn per_limit(rows: Vec<(i64, i64, Option<i64>)>, count: usize) -> Vec<Tally> {
    let small = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let mut per_limit = nothing_counted(count);
    for (index, counted, failed) in rows {
        let tally = usize::try_from(index)
            .ok()
            .and_then(|i| per_limit.get_mut(i));
        if let Some(tally) = tally {
            *tally = (small(counted), small(failed.unwrap_or(0)));
        }
    }
    per_limit
}

/// The rows `limit` counts for `attempt`; `None` when the limit does not
/// apply (an account limit for an attempt that names no account). For an
/// account, only the rows after its latest success (a subquery, so that
/// this costs no round trip of its own).
fn counted_rows(
    attempt: &Attempt,
    account: Option<Expr>,
    limit: &Limit,
    now: DateTime<Utc>,
) -> Option<Select<login_attempts::Entity>> {
    let kinds = || limit.kinds.iter().copied();
    let rows = login_attempts::Entity::find()
        .filter(Column::Kind.is_in(kinds()))
        .filter(Column::Outcome.is_in(COUNTED))
        .filter(Column::CreatedAt.gt(now - limit.window));
    Some(match limit.per {
        Per::Address => rows.filter(Column::Ip.eq(stored_ip(&attempt.ip))),
        Per::Account => {
            let account = account?;
            let of_account = |select: Select<login_attempts::Entity>| {
                select
                    .filter(Column::SiteId.eq(attempt.site_id))
                    .filter(Expr::col(Column::Account).eq(account.clone()))
                    .filter(Column::Kind.is_in(kinds()))
            };
            let latest_success = of_account(login_attempts::Entity::find())
                .filter(Column::Outcome.eq(Outcome::Succeeded))
                .select_only()
                .expr(Func::max(Expr::col(Column::Id)))
                .into_query();
            of_account(rows).filter(Expr::col(Column::Id).gt(Func::coalesce([
                Expr::from(SubQueryStatement::from(latest_success)),
                Expr::val(0i64),
            ])))
        }
    })
}

/// How an address is counted: IPv6 addresses by their /64 (one customer's
/// network, as cheap to spread over as a single address), others as they are.
fn stored_ip(ip: &str) -> String {
    match ip.parse::<std::net::Ipv6Addr>() {
        Ok(v6) if v6.to_ipv4_mapped().is_none() => {
            let segments = v6.segments();
            let network = std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("{network}/64")
        }
        Ok(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| ip.to_owned(), |v4| v4.to_string()),
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// How long until an attempt like this one would be admitted: enough of the
/// oldest counted rows (not counting this attempt's own) must leave the window.
async fn wait_until_admitted(
    db: &impl ConnectionTrait,
    rows: Select<login_attempts::Entity>,
    count: u32,
    limit: &Limit,
    now: DateTime<Utc>,
    own_id: i64,
) -> Result<Duration, DbErr> {
    // Others: count − 1 rows; at most max − 1 may remain for the next one.
    let must_leave = count - limit.max;
    let oldest_that_matters: Option<DateTime<Utc>> = rows
        .filter(Column::Id.ne(own_id))
        .select_only()
        .column(Column::CreatedAt)
        .order_by_asc(Column::CreatedAt)
        .offset(u64::from(must_leave - 1))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    let until = oldest_that_matters.map_or(now + limit.window, |at| at + limit.window);
    Ok((until - now).max(Duration::seconds(1)))
}

impl Ticket {
    /// Marks the attempt with what came of it.
    pub async fn resolve(self, db: &impl ConnectionTrait, outcome: Outcome) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        db.execute_raw(self.resolution(backend, outcome))
            .await
            .map(|_| ())
    }

    /// `resolve` as a statement, for the caller to run together with others
    /// (`db::execute_together`).
    pub fn resolution(self, backend: DbBackend, outcome: Outcome) -> Statement {
        login_attempts::Entity::update_many()
            .col_expr(Column::Outcome, Expr::value(outcome))
            .filter(Column::Id.eq(self.id))
            .build(backend)
    }

    /// Takes the attempt back: it was not judged (a captcha was missing or
    /// wrong, or the form was refused before anything was tried).
    pub async fn withdraw(self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        login_attempts::Entity::delete_by_id(self.id)
            .exec(db)
            .await
            .map(|_| ())
    }

    /// Spends a captcha challenge on this attempt: false if another attempt
    /// already spent it (a replayed cookie).
    pub async fn spend_challenge(
        &self,
        db: &impl ConnectionTrait,
        nonce: &str,
    ) -> Result<bool, DbErr> {
        let result = login_attempts::Entity::update_many()
            .col_expr(Column::CaptchaNonce, Expr::value(nonce))
            .filter(Column::Id.eq(self.id))
            .exec(db)
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }
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

/// Removes the attempts that name a member's account (for an account
/// being deleted).
pub async fn forget_account(db: &impl ConnectionTrait, user_id: i64) -> Result<u64, DbErr> {
    Ok(login_attempts::Entity::delete_many()
        .filter(Column::Account.eq(account_of_user(user_id)))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::stored_ip;

    #[test]
    fn ipv6_addresses_are_counted_by_their_64_bit_network() {
        assert_eq!(stored_ip("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(stored_ip("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(stored_ip("::ffff:203.0.113.5"), "203.0.113.5");
        assert_eq!(stored_ip("203.0.113.5"), "203.0.113.5");
        assert_eq!(stored_ip(""), "");
    }
}
