//! The `mail_outbox` table: queueing a message inside the caller's
//! transaction, claiming due messages for delivery, and recording the result.
//!
//! Bodies are sealed (XChaCha20-Poly1305, key derived from the site secret,
//! recipient and subject as associated data) and erased once delivered, so a
//! database dump shows who was mailed what subject, never a code or a link.
//!
//! Claiming is one `UPDATE … WHERE id IN (SELECT … LIMIT n)` that pushes
//! `next_attempt_at` past the time a delivery can take (a lease) and counts
//! the attempt. On PostgreSQL the inner SELECT takes `FOR UPDATE SKIP
//! LOCKED`, so several instances claim different rows without waiting on
//! each other; SQLite has one writer at a time, which gives the same result.
//! A worker that dies mid-delivery leaves its rows to come due again when
//! the lease runs out.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::Mail;
use crate::email_address::EmailAddress;
use crate::entities::{invites, mail_outbox};
use crate::secrets::{OpenError, SealingKey};
use crate::settings::MailSettings;

pub use crate::entities::mail_outbox::Status;

/// Longest error text kept per row.
const MAX_ERROR_CHARS: usize = 500;

/// What to queue.
pub struct Outgoing<'a> {
    pub site_id: i64,
    /// The invite this message announces: its `sent_at` is set on delivery.
    pub invite_id: Option<i64>,
    pub sender: &'a lettre::message::Mailbox,
    pub recipient: &'a EmailAddress,
    pub mail: &'a Mail,
}

#[derive(Serialize, Deserialize)]
struct Parts {
    text: String,
    html: String,
}

/// The associated data of a sealed body: a body moved to another row (say,
/// one whose recipient was changed in the database) no longer opens.
fn seal_context(recipient: &str, subject: &str) -> Vec<u8> {
    format!("gatehouse/mail-outbox\0{recipient}\0{subject}").into_bytes()
}

/// How many of a site's messages have `status` (the staff index's counts).
pub async fn count_with_status(
    db: &impl ConnectionTrait,
    site_id: i64,
    status: Status,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::SiteId.eq(site_id))
        .filter(mail_outbox::Column::Status.eq(status))
        .count(db)
        .await
}

/// What became of a site's messages queued since `since`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult)]
pub struct Outcomes {
    /// Sent at the first attempt.
    pub delivered: i64,
    /// Sent after failed attempts, or waiting to be tried again.
    pub retried: i64,
    /// Given up on.
    pub failed: i64,
}

pub async fn outcomes_since(
    db: &impl ConnectionTrait,
    site_id: i64,
    since: DateTime<Utc>,
) -> Result<Outcomes, DbErr> {
    use mail_outbox::Column;
    use sea_orm::QuerySelect;
    use sea_orm::sea_query::{CaseStatement, SimpleExpr};
    let count_when = |condition: SimpleExpr| {
        Expr::expr(CaseStatement::new().case(condition, Expr::val(1))).count()
    };
    let sent = Expr::col(Column::Status).eq(Status::Sent);
    let retried = Expr::col(Column::Attempts)
        .gt(1)
        .and(sent.clone())
        .or(Expr::col(Column::Attempts)
            .gt(0)
            .and(Expr::col(Column::Status).eq(Status::Pending)));
    let found = mail_outbox::Entity::find()
        .select_only()
        .column_as(
            count_when(sent.and(Expr::col(Column::Attempts).lte(1))),
            "delivered",
        )
        .column_as(count_when(retried), "retried")
        .column_as(
            count_when(Expr::col(Column::Status).eq(Status::Failed)),
            "failed",
        )
        .filter(Column::SiteId.eq(site_id))
        .filter(Column::CreatedAt.gte(since))
        .into_model::<Outcomes>()
        .one(db)
        .await?;
    Ok(found.unwrap_or_default())
}

/// Which of these invites have mail in the outbox (sent or not): the others
/// were never meant to be e-mailed (their code was handed over).
pub async fn invites_with_mail(
    db: &impl ConnectionTrait,
    invite_ids: Vec<i64>,
) -> Result<std::collections::HashSet<i64>, DbErr> {
    use sea_orm::QuerySelect;
    if invite_ids.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<Option<i64>> = mail_outbox::Entity::find()
        .select_only()
        .column(mail_outbox::Column::InviteId)
        .distinct()
        .filter(mail_outbox::Column::InviteId.is_in(invite_ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().flatten().collect())
}

/// Writes a message to the outbox in `db` (pass the caller's transaction).
/// Call `Mailer::wake` once the transaction has committed.
pub async fn queue(
    db: &impl ConnectionTrait,
    key: &SealingKey,
    outgoing: Outgoing<'_>,
    now: DateTime<Utc>,
) -> Result<mail_outbox::Model, DbErr> {
    let recipient = outgoing.recipient.as_str();
    let parts = Parts {
        text: outgoing.mail.text.clone(),
        html: outgoing.mail.html.clone(),
    };
    let plain = serde_json::to_vec(&parts).map_err(|err| DbErr::Custom(err.to_string()))?;
    let body = key.seal(&seal_context(recipient, &outgoing.mail.subject), &plain);
    mail_outbox::ActiveModel {
        site_id: Set(outgoing.site_id),
        invite_id: Set(outgoing.invite_id),
        sender: Set(outgoing.sender.to_string()),
        recipient: Set(recipient.to_owned()),
        subject: Set(outgoing.mail.subject.clone()),
        body: Set(Some(body)),
        status: Set(Status::Pending),
        attempts: Set(0),
        created_at: Set(now),
        next_attempt_at: Set(now),
        last_attempt_at: Set(None),
        sent_at: Set(None),
        last_error: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// A claimed message, opened and ready to hand to a transport.
pub struct Letter {
    pub sender: lettre::message::Mailbox,
    pub recipient: lettre::message::Mailbox,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LetterError {
    #[error("the message was already delivered and its body erased")]
    Erased,
    #[error(
        "the message cannot be decrypted: the secret key changed since it was queued, or the row was altered"
    )]
    Sealed(#[from] OpenError),
    #[error("the stored message is unreadable: {0}")]
    Corrupt(String),
}

/// Opens a claimed row's body.
pub fn open(key: &SealingKey, row: &mail_outbox::Model) -> Result<Letter, LetterError> {
    let sealed = row.body.as_deref().ok_or(LetterError::Erased)?;
    let plain = key.open(&seal_context(&row.recipient, &row.subject), sealed)?;
    let parts: Parts =
        serde_json::from_slice(&plain).map_err(|err| LetterError::Corrupt(err.to_string()))?;
    let sender = row
        .sender
        .parse()
        .map_err(|err| LetterError::Corrupt(format!("sender: {err}")))?;
    let recipient = row
        .recipient
        .parse()
        .map_err(|err| LetterError::Corrupt(format!("recipient: {err}")))?;
    Ok(Letter {
        sender,
        recipient,
        subject: row.subject.clone(),
        text: parts.text,
        html: parts.html,
    })
}

/// Claims up to `limit` due messages (only among `only`, when given): each
/// gets one more attempt counted and is leased for `lease`.
pub async fn claim(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u64,
    only: Option<&[i64]>,
) -> Result<Vec<mail_outbox::Model>, DbErr> {
    use mail_outbox::Column;
    let mut due = Query::select();
    due.column(Column::Id)
        .from(mail_outbox::Entity)
        .and_where(Expr::col(Column::Status).eq(Status::Pending))
        .and_where(Expr::col(Column::NextAttemptAt).lte(now))
        .order_by(Column::NextAttemptAt, Order::Asc)
        .order_by(Column::Id, Order::Asc)
        .limit(limit)
        // Ignored by SQLite's query builder: there the UPDATE is atomic anyway.
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    if let Some(ids) = only {
        due.and_where(Expr::col(Column::Id).is_in(ids.iter().copied()));
    }
    let claim = Query::update()
        .table(mail_outbox::Entity)
        .value(Column::NextAttemptAt, now + lease)
        .value(Column::LastAttemptAt, Some(now))
        .value(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .and_where(Expr::col(Column::Id).in_subquery(due))
        .returning_all()
        .to_owned();
    let backend = db.get_database_backend();
    let rows = db.query_all_raw(backend.build(&claim)).await?;
    let mut claimed = rows
        .iter()
        .map(|row| mail_outbox::Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|row| row.id);
    Ok(claimed)
}

/// Records a delivery: the body is erased and (when the transport really
/// delivers) the invite marked sent, in one transaction. Does nothing if the
/// row was claimed again or cancelled meanwhile.
pub async fn mark_sent(
    db: &impl TransactionTrait,
    row: &mail_outbox::Model,
    delivered: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let updated = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::Status, Expr::value(Status::Sent))
        .col_expr(mail_outbox::Column::SentAt, Expr::value(Some(now)))
        .col_expr(
            mail_outbox::Column::Body,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            mail_outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(mail_outbox::Column::Id.eq(row.id))
        .filter(mail_outbox::Column::Attempts.eq(row.attempts))
        .filter(mail_outbox::Column::Status.eq(Status::Pending))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 1
        && delivered
        && let Some(invite_id) = row.invite_id
    {
        invites::Entity::update_many()
            .col_expr(invites::Column::SentAt, Expr::value(Some(now)))
            .filter(invites::Column::Id.eq(invite_id))
            .filter(invites::Column::SentAt.is_null())
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

/// Cancels an invite's mail that is not delivered yet, erasing its body.
pub async fn cancel_for_invite(db: &impl ConnectionTrait, invite_id: i64) -> Result<u64, DbErr> {
    let updated = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::Status, Expr::value(Status::Cancelled))
        .col_expr(
            mail_outbox::Column::Body,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(mail_outbox::Column::InviteId.eq(invite_id))
        .filter(mail_outbox::Column::Status.is_in([Status::Pending, Status::Failed]))
        .exec(db)
        .await?;
    Ok(updated.rows_affected)
}

/// Deletes a site's messages to these addresses, whatever their state (for
/// an account being deleted: what was mailed to the member, and to the
/// referees they asked). Returns how many.
pub async fn erase_to(
    db: &impl ConnectionTrait,
    site_id: i64,
    recipients: &[String],
) -> Result<u64, DbErr> {
    let mut erased = 0;
    for chunk in recipients.chunks(500) {
        erased += mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::SiteId.eq(site_id))
            .filter(mail_outbox::Column::Recipient.is_in(chunk.iter().cloned()))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(erased)
}

/// Removes rows of messages delivered (or cancelled) before `cutoff` (for
/// `purge`); with `dry_run` only counts them. Pending and failed messages
/// stay whatever their age: they still wait for delivery or for staff.
pub async fn delete_done_before(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    use sea_orm::{Condition, PaginatorTrait};
    let done = Condition::any()
        .add(
            Condition::all()
                .add(mail_outbox::Column::Status.eq(Status::Sent))
                .add(mail_outbox::Column::SentAt.lt(cutoff)),
        )
        .add(
            Condition::all()
                .add(mail_outbox::Column::Status.eq(Status::Cancelled))
                .add(mail_outbox::Column::CreatedAt.lt(cutoff)),
        );
    if dry_run {
        return mail_outbox::Entity::find().filter(done).count(db).await;
    }
    Ok(mail_outbox::Entity::delete_many()
        .filter(done)
        .exec(db)
        .await?
        .rows_affected)
}

/// When the attempts of a message run out, or how long until the next one.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl From<&MailSettings> for RetryPolicy {
    fn from(settings: &MailSettings) -> Self {
        let millis = |ms: u64| Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX));
        Self {
            max_attempts: settings.max_attempts,
            base: millis(settings.retry_base_ms),
            max: millis(settings.retry_max_ms),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt: base, 2×base, 4×base, … up to max.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = std::cmp::min(attempts.saturating_sub(1), 30);
        self.base
            .checked_mul(1 << doublings)
            .map_or(self.max, |delay| std::cmp::min(delay, self.max))
    }
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(DateTime<Utc>),
    GaveUp,
}

/// Records a failed attempt: retried after a backoff, or marked failed once
/// the attempts run out (or at once when `permanent`). The body is kept, so
/// staff can retry a failed message.
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    row: &mail_outbox::Model,
    error: &str,
    permanent: bool,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<AfterFailure, DbErr> {
    let attempts = u32::try_from(row.attempts).unwrap_or(0);
    let outcome = if permanent || attempts >= policy.max_attempts {
        AfterFailure::GaveUp
    } else {
        AfterFailure::RetryAt(now + policy.delay_after(attempts))
    };
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let mut update = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::LastError, Expr::value(Some(error)))
        .filter(mail_outbox::Column::Id.eq(row.id))
        .filter(mail_outbox::Column::Attempts.eq(row.attempts))
        .filter(mail_outbox::Column::Status.eq(Status::Pending));
    update = match outcome {
        AfterFailure::RetryAt(at) => {
            update.col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(at))
        }
        AfterFailure::GaveUp => {
            update.col_expr(mail_outbox::Column::Status, Expr::value(Status::Failed))
        }
    };
    update.exec(db).await?;
    Ok(outcome)
}

/// Staff's "retry": a failed or waiting message of this site is due now,
/// with a fresh round of attempts. False when there is no such message.
pub async fn retry(
    db: &impl ConnectionTrait,
    site_id: i64,
    id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let updated = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::Status, Expr::value(Status::Pending))
        .col_expr(mail_outbox::Column::Attempts, Expr::value(0))
        .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(now))
        .filter(mail_outbox::Column::Id.eq(id))
        .filter(mail_outbox::Column::SiteId.eq(site_id))
        .filter(mail_outbox::Column::Status.is_in([Status::Pending, Status::Failed]))
        .filter(mail_outbox::Column::Body.is_not_null())
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::seconds(30),
            max: Duration::hours(1),
        };
        let waits: Vec<i64> = (1..=9)
            .map(|n| policy.delay_after(n).num_seconds())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(policy.delay_after(u32::MAX).num_seconds(), 3600);
    }
}
