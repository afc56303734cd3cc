//! How a queued message is getting on, in the words staff and the command
//! line use: one reading of an outbox row, and one wording of it.

use serde::Serialize;

use super::Mailer;
use super::outbox::Status;
use crate::entities::mail_outbox;

/// An outbox row's stored status, with a waiting message that has failed
/// before told apart (it is retried automatically, but staff may want to
/// know). Serialises as the staff mail page's badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Waiting for its first attempt.
    Pending,
    /// Waiting after a failed attempt.
    Retrying,
    Sent,
    /// Given up: it waits for staff to retry it.
    Failed,
    Cancelled,
}

impl Delivery {
    pub fn of(row: &mail_outbox::Model) -> Self {
        match row.status {
            Status::Sent => Self::Sent,
            Status::Failed => Self::Failed,
            Status::Cancelled => Self::Cancelled,
            Status::Pending if row.last_error.is_some() => Self::Retrying,
            Status::Pending => Self::Pending,
        }
    }

    /// True while nothing has been handed to the mail server and it may still be.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }
}

/// What the staff member who just made an invitation is told about its
/// e-mail: a state for the page (`mail_state`) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationNotice {
    /// "none", "off", "queued", "retrying", "sent" or "failed".
    pub state: &'static str,
    pub message: String,
}

/// The invitation e-mail's `row` (none when nothing was queued), in the
/// staff member's words.
pub fn invitation_notice(mailer: &Mailer, row: Option<&mail_outbox::Model>) -> InvitationNotice {
    let notice = |state, message| InvitationNotice { state, message };
    let Some(row) = row else {
        return notice("none", String::new());
    };
    if !mailer.delivers() {
        return notice(
            "off",
            "Mail delivery is switched off on this site (mail.transport is \"log\"), so no \
             e-mail goes out: give the code to them yourself."
                .into(),
        );
    }
    let recipient = &row.recipient;
    match (Delivery::of(row), row.last_error.as_deref()) {
        (Delivery::Sent, _) => notice(
            "sent",
            format!(
                "The invitation e-mail to {recipient} was queued and has been handed to the mail server."
            ),
        ),
        (Delivery::Failed, error) => notice(
            "failed",
            format!(
                "The invitation e-mail to {recipient} was queued, but delivery failed ({}). Retry it from the Mail page.",
                error.unwrap_or("no reason given")
            ),
        ),
        (_, Some(error)) => notice(
            "retrying",
            format!(
                "The invitation e-mail to {recipient} is queued, but the mail server has not taken it yet \
                 ({error}). It is retried automatically; nothing is lost."
            ),
        ),
        (_, None) => notice(
            "queued",
            format!("The invitation e-mail to {recipient} is queued and goes out in a moment."),
        ),
    }
}
