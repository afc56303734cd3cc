//! Where delivered mail goes: one enum over lettre's SMTP and file
//! transports, plus `Log`, which delivers nowhere and logs a line (recipient
//! and subject only: bodies hold codes) so a fresh install runs without a
//! mail server.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::{MailSettings, MailTransportKind};

#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File {
        dir: PathBuf,
        transport: AsyncFileTransport<Tokio1Executor>,
    },
    Log,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::File { dir, .. } => write!(f, "Transport::File({})", dir.display()),
            Self::Log => f.write_str("Transport::Log"),
        }
    }
}

/// Why a message was not handed over; retried later by the outbox.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

impl Transport {
    pub fn from_settings(settings: &MailSettings) -> anyhow::Result<Self> {
        Ok(match settings.transport {
            MailTransportKind::Smtp => {
                let builder = smtp_builder(settings.smtp_url.expose()).map_err(|problem| {
                    anyhow::anyhow!("invalid setting mail.smtp_url: {problem}")
                })?;
                let pool_size = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
                Self::Smtp(
                    builder
                        .timeout(Some(Duration::from_secs(settings.timeout_secs)))
                        .pool_config(PoolConfig::new().max_size(pool_size))
                        .build(),
                )
            }
            MailTransportKind::File => Self::File {
                dir: settings.file_dir.clone(),
                transport: AsyncFileTransport::new(&settings.file_dir),
            },
            MailTransportKind::Log => Self::Log,
        })
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|err| SendError(format!("SMTP: {err}"))),
            Self::File { dir, transport } => {
                tokio::fs::create_dir_all(dir).await.map_err(|err| {
                    SendError(format!("could not create {}: {err}", dir.display()))
                })?;
                transport.send(message).await.map(drop).map_err(|err| {
                    SendError(format!("could not write to {}: {err}", dir.display()))
                })
            }
            Self::Log => {
                let to = message
                    .envelope()
                    .to()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let subject = message.headers().get_raw("Subject").unwrap_or_default();
                log::info!(
                    "Mail to {to} ({subject:?}) was not delivered: mail.transport is \"log\"."
                );
                Ok(())
            }
        }
    }
}

/// Checks `mail.smtp_url` without connecting, for the settings check.
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    smtp_builder(url).map(drop)
}

/// lettre reads `smtp://`, `smtps://` and `?tls=required|opportunistic`;
/// `?tls=starttls` (the name most mail providers use) means `required`.
fn smtp_builder(url: &str) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder, String> {
    let mut parsed = url::Url::parse(url.trim())
        .map_err(|err| format!("{err} (expected e.g. smtp://127.0.0.1:25)"))?;
    if !matches!(parsed.scheme(), "smtp" | "smtps") {
        return Err("must start with smtp:// or smtps://".into());
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(key, value)| {
            let value = match (key.as_ref(), value.as_ref()) {
                ("tls", "starttls") => "required".to_owned(),
                _ => value.into_owned(),
            };
            (key.into_owned(), value)
        })
        .collect();
    if let Some((_, tls)) = pairs.iter().find(|(key, _)| key == "tls")
        && !matches!(tls.as_str(), "required" | "opportunistic")
    {
        return Err(format!(
            "unknown tls={tls} (use tls=starttls, tls=opportunistic, or smtps://)"
        ));
    }
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // lettre's own messages can echo the URL: keep the password out of them.
    AsyncSmtpTransport::<Tokio1Executor>::from_url(parsed.as_str()).map_err(|err| {
        let message = err.to_string();
        match parsed.password() {
            Some(password) if !password.is_empty() => message.replace(password, "****"),
            _ => message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::check_smtp_url;

    #[test]
    fn smtp_urls_with_and_without_tls_are_understood() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.org",
            "smtp://user:p%40ss@mail.example.org:587?tls=starttls",
            "smtp://mail.example.org:587?tls=required",
            "smtp://mail.example.org:587?tls=opportunistic",
            "smtps://user:pass@mail.example.org",
        ] {
            assert_eq!(check_smtp_url(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "mail.example.org",
            "http://mail.example.org",
            "smtp://mail.example.org?tls=maybe",
        ] {
            assert!(check_smtp_url(bad).is_err(), "{bad}");
        }
    }
}
