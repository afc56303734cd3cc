//! What `mail.from` and `mail.smtp_url` mean, read where settings are
//! checked (so a bad value stops the start) and used by `mail` to deliver.

use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

/// Parses `mail.from`; the error says what is wrong, for the settings check.
pub fn parse_from(from: &str) -> Result<Mailbox, String> {
    from.trim().parse::<Mailbox>().map_err(|err| {
        format!("{err} (expected an address like \"Club <noreply@club.example.org>\")")
    })
}

/// Checks `mail.smtp_url` without connecting, for the settings check.
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    smtp_builder(url).map(drop)
}

/// How `mail.smtp_url` asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Plain,
    /// `?tls=starttls` or `?tls=required`: STARTTLS or no delivery.
    StartTlsRequired,
    /// `?tls=opportunistic`: STARTTLS when the server offers it.
    StartTlsOpportunistic,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

pub struct SmtpEndpoint {
    pub builder: AsyncSmtpTransportBuilder,
    pub host: String,
    pub tls: TlsMode,
}

/// lettre reads `smtp://`, `smtps://` and `?tls=required|opportunistic`;
/// `?tls=starttls` (the name most mail providers use) means `required`.
pub fn smtp_builder(url: &str) -> Result<SmtpEndpoint, String> {
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
    let tls_query = pairs
        .iter()
        .find(|(key, _)| key == "tls")
        .map(|(_, tls)| tls.as_str());
    let tls = match (parsed.scheme(), tls_query) {
        (_, Some(other)) if !matches!(other, "required" | "opportunistic") => {
            return Err(format!(
                "unknown tls={other} (use tls=starttls, tls=opportunistic, or smtps://)"
            ));
        }
        ("smtps", _) => TlsMode::Implicit,
        (_, None) => TlsMode::Plain,
        (_, Some("required")) => TlsMode::StartTlsRequired,
        (_, Some(_)) => TlsMode::StartTlsOpportunistic,
    };
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // lettre's own messages can echo the URL: keep the password out of them.
    let builder =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(parsed.as_str()).map_err(|err| {
            let message = err.to_string();
            match parsed.password() {
                Some(password) if !password.is_empty() => message.replace(password, "****"),
                _ => message,
            }
        })?;
    Ok(SmtpEndpoint {
        builder,
        // lettre checks the certificate against this same name.
        host: parsed.host_str().unwrap_or_default().to_owned(),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::{TlsMode, check_smtp_url, parse_from, smtp_builder};

    #[test]
    fn smtp_urls_with_and_without_tls_are_understood() {
        for (good, tls) in [
            ("smtp://127.0.0.1:2525", TlsMode::Plain),
            ("smtp://mail.example.org", TlsMode::Plain),
            (
                "smtp://user:p%40ss@mail.example.org:587?tls=starttls",
                TlsMode::StartTlsRequired,
            ),
            (
                "smtp://mail.example.org:587?tls=required",
                TlsMode::StartTlsRequired,
            ),
            (
                "smtp://mail.example.org:587?tls=opportunistic",
                TlsMode::StartTlsOpportunistic,
            ),
            ("smtps://user:pass@mail.example.org", TlsMode::Implicit),
        ] {
            assert_eq!(check_smtp_url(good), Ok(()), "{good}");
            let endpoint = smtp_builder(good).expect("understood");
            assert_eq!(endpoint.tls, tls, "{good}");
            assert!(matches!(
                endpoint.host.as_str(),
                "127.0.0.1" | "mail.example.org"
            ));
        }
        for bad in [
            "",
            "mail.example.org",
            "http://mail.example.org",
            "smtp://mail.example.org?tls=maybe",
            "smtps://mail.example.org?tls=maybe",
        ] {
            assert!(check_smtp_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_from_is_explained() {
        assert!(parse_from("not an address").is_err());
        assert!(parse_from("Gatehouse <noreply@localhost>").is_ok());
    }
}
