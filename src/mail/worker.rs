//! The delivery worker: runs inside `serve` (and every app `Application::build`
//! makes), delivers due mail from the outbox, and sleeps until mail is
//! queued (`Mailer::wake`), the poll interval passes (mail queued by another
//! instance or the command line), or the server stops.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use lettre::Message;
use lettre::message::MultiPart;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Mailer;
use super::outbox::{self, AfterFailure, LetterError, RetryPolicy};
use crate::dates;
use crate::entities::mail_outbox;

/// Messages claimed at a time.
const BATCH: u64 = 50;

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Messages taken from the outbox.
    pub claimed: usize,
    pub sent: usize,
    /// Failed attempts (retried later, or given up).
    pub failed: usize,
}

impl std::ops::AddAssign for Delivered {
    fn add_assign(&mut self, other: Self) {
        self.claimed += other.claimed;
        self.sent += other.sent;
        self.failed += other.failed;
    }
}

/// A running worker; `stop` ends it after the message in hand.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    pub async fn stop(self, wait: Duration) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(wait, self.task).await.is_err() {
            log::warn!("The mail worker did not stop in time; messages in hand are retried later.");
            abort.abort();
        }
    }
}

/// Starts the worker on the current tokio runtime.
pub fn spawn(db: DatabaseConnection, mailer: std::sync::Arc<Mailer>) -> WorkerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let woken = mailer.woken();
        let poll = Duration::from_millis(mailer.settings.poll_interval_ms);
        loop {
            // Between batches, not mid-message: a stop never half-sends. A
            // batch that delivered nothing (the server is down) ends the
            // pass: the rest waits for the next wake-up rather than each
            // message trying the dead server in turn.
            loop {
                match deliver_batch(&db, &mailer, None).await {
                    Ok(done) if done.sent > 0 && !*stopped.borrow() => continue,
                    Ok(_) => break,
                    Err(err) => {
                        log::error!("The mail worker could not read the outbox: {err}");
                        break;
                    }
                }
            }
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep(poll) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                break;
            }
        }
        log::debug!("The mail worker stopped.");
    });
    WorkerHandle { stop, task }
}

/// Delivers every due message (among `only`, when given), batch after batch.
pub async fn deliver_due(
    db: &DatabaseConnection,
    mailer: &Mailer,
    only: Option<&[i64]>,
) -> Result<Delivered, DbErr> {
    let mut total = Delivered::default();
    loop {
        let done = deliver_batch(db, mailer, only).await?;
        if done.claimed == 0 {
            return Ok(total);
        }
        total += done;
    }
}

/// Claims one batch of due messages and delivers it, `mail.concurrency` at a time.
pub async fn deliver_batch(
    db: &DatabaseConnection,
    mailer: &Mailer,
    only: Option<&[i64]>,
) -> Result<Delivered, DbErr> {
    let settings = &mailer.settings;
    // Long enough that a slow delivery is never claimed twice.
    let lease_secs = i64::try_from(settings.timeout_secs.saturating_mul(3)).unwrap_or(i64::MAX);
    let lease = chrono::Duration::seconds(lease_secs.saturating_add(60));
    let claimed = outbox::claim(db, Utc::now(), lease, BATCH, only).await?;
    let policy = RetryPolicy::from(settings);
    // Futures built first: a stream mapping over borrowed rows trips the
    // compiler's lifetime inference inside the spawned worker task.
    let deliveries: Vec<_> = claimed
        .iter()
        .map(|row| deliver_one(db, mailer, row, &policy))
        .collect();
    let results: Vec<Result<bool, DbErr>> = futures_util::stream::iter(deliveries)
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let mut done = Delivered {
        claimed: claimed.len(),
        ..Delivered::default()
    };
    for result in results {
        if result? {
            done.sent += 1;
        } else {
            done.failed += 1;
        }
    }
    Ok(done)
}

/// True when delivered. Failures are recorded on the row, and logged
/// without the body.
async fn deliver_one(
    db: &DatabaseConnection,
    mailer: &Mailer,
    row: &mail_outbox::Model,
    policy: &RetryPolicy,
) -> Result<bool, DbErr> {
    let (error, permanent) = match build(mailer, row) {
        Ok(message) => match mailer.transport.send(message).await {
            Ok(()) => {
                outbox::mark_sent(db, row, mailer.delivers(), Utc::now()).await?;
                log::info!(
                    "Mail {} to {} was delivered (attempt {}).",
                    row.id,
                    row.recipient,
                    row.attempts
                );
                return Ok(true);
            }
            Err(err) => (err.to_string(), false),
        },
        Err(err) => (err.to_string(), true),
    };
    match outbox::mark_failed(db, row, &error, permanent, policy, Utc::now()).await? {
        AfterFailure::RetryAt(at) => log::warn!(
            "Mail {} to {} was not delivered (attempt {}): {error}. Retrying at {}.",
            row.id,
            row.recipient,
            row.attempts,
            dates::log_clock(at)
        ),
        AfterFailure::GaveUp => log::error!(
            "Mail {} to {} failed after {} attempts: {error}. Staff can retry it on /staff/mail.",
            row.id,
            row.recipient,
            row.attempts
        ),
    }
    Ok(false)
}

fn build(mailer: &Mailer, row: &mail_outbox::Model) -> Result<Message, LetterError> {
    let letter = outbox::open(mailer.key(), row)?;
    Message::builder()
        .from(letter.sender)
        .to(letter.recipient)
        .subject(letter.subject)
        .multipart(MultiPart::alternative_plain_html(letter.text, letter.html))
        .map_err(|err| LetterError::Corrupt(err.to_string()))
}
