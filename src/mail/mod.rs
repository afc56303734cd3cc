//! Outgoing mail. A message is rendered from `templates/mail/<name>/`
//! (`subject.txt`, `body.txt`, `body.html`), written to the outbox in the
//! caller's transaction (`outbox`), and delivered later by the background
//! worker (`worker`) through the configured transport (`transport`); how a
//! message is getting on is read and worded in one place (`delivery`). Nothing
//! is sent from a request handler, so a mail server that is down never fails
//! a page and never loses a message.

pub mod delivery;
pub mod outbox;
mod staff;
pub mod transport;
pub mod worker;

pub use staff::staff_routes;

use std::sync::Arc;

use lettre::message::Mailbox;
use tera::{Context, Tera};
use tokio::sync::Notify;

use crate::email_address::EmailAddress;
use crate::secrets::{Keys, SealingKey};
use crate::settings::{MailSettings, MailTransportKind};
use transport::Transport;

/// A rendered message: subject and both parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Bodies carry codes and links: never in a log line through `Debug`.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Mail {
    /// Renders `templates/mail/<name>/{subject.txt, body.txt, body.html}`.
    /// Only `body.html` is HTML-escaped (Tera escapes by file name). The
    /// subject is one line, whatever the template or its values hold.
    pub fn from_template(templates: &Tera, name: &str, context: &Context) -> tera::Result<Self> {
        let subject = templates.render(&format!("mail/{name}/subject.txt"), context)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Self {
            subject,
            text: templates.render(&format!("mail/{name}/body.txt"), context)?,
            html: templates.render(&format!("mail/{name}/body.html"), context)?,
        })
    }
}

/// True when the address can be put in a message's `To:` header. Our
/// `EmailAddress` rules are close to lettre's, but lettre has the last word.
pub fn can_address(email: &EmailAddress) -> bool {
    email.as_str().parse::<lettre::Address>().is_ok()
}

/// What the app needs to queue and deliver mail; lives in `AppState`.
pub struct Mailer {
    pub transport: Transport,
    pub settings: MailSettings,
    key: SealingKey,
    from: Mailbox,
    wake: Arc<Notify>,
}

impl Mailer {
    pub fn new(settings: &MailSettings, keys: &Keys) -> anyhow::Result<Self> {
        let from = crate::settings::mail::parse_from(&settings.from)
            .map_err(|problem| anyhow::anyhow!("invalid setting mail.from: {problem}"))?;
        Ok(Self {
            transport: Transport::from_settings(settings)?,
            settings: settings.clone(),
            key: keys.mail_key(),
            from,
            wake: Arc::new(Notify::new()),
        })
    }

    /// The `From:` of a site's mail: `mail.from`, named after the site
    /// unless `mail.from` names itself.
    pub fn sender_for(&self, site_name: &str) -> Mailbox {
        match &self.from.name {
            Some(_) => self.from.clone(),
            None => Mailbox::new(Some(site_name.to_owned()), self.from.email.clone()),
        }
    }

    /// False when mail only goes to the log: nobody will receive it.
    pub fn delivers(&self) -> bool {
        self.settings.transport != MailTransportKind::Log
    }

    /// Tells the worker there is mail to deliver. Call after the
    /// transaction that queued it has committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Writes a message to the outbox in `db` (pass the caller's
    /// transaction); call `wake` once it has committed.
    pub async fn queue(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        outgoing: outbox::Outgoing<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::entities::mail_outbox::Model, sea_orm::DbErr> {
        outbox::queue(db, &self.key, outgoing, now).await
    }

    /// Queues `mail` from `site` (its name as the sender's) to `recipient`,
    /// in the caller's transaction; `invite_id` when it announces an invite.
    pub async fn queue_from_site(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        site: &crate::web::sites::Site,
        recipient: &EmailAddress,
        mail: &Mail,
        invite_id: Option<i64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::entities::mail_outbox::Model, sea_orm::DbErr> {
        let sender = self.sender_for(&site.name);
        let outgoing = outbox::Outgoing {
            site_id: site.id,
            invite_id,
            sender: &sender,
            recipient,
            mail,
        };
        self.queue(db, outgoing, now).await
    }

    pub(crate) fn key(&self) -> &SealingKey {
        &self.key
    }

    pub(crate) fn woken(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_takes_the_site_name_unless_from_has_one() {
        let mut settings = crate::settings::Settings::defaults().mail;
        let keys = Keys::derive(&"k".repeat(40));
        settings.from = "noreply@club.example.org".into();
        let mailer = Mailer::new(&settings, &keys).expect("mailer");
        assert_eq!(
            mailer.sender_for("Tango Club").to_string(),
            "Tango Club <noreply@club.example.org>"
        );
        settings.from = "Club Office <office@club.example.org>".into();
        let mailer = Mailer::new(&settings, &keys).expect("mailer");
        assert_eq!(
            mailer.sender_for("Tango Club").to_string(),
            "Club Office <office@club.example.org>"
        );
    }
}
