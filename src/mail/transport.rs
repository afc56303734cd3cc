//! Where delivered mail goes: one enum over lettre's SMTP and file
//! transports, plus `Log`, which delivers nowhere and logs a line (recipient
//! and subject only: bodies hold codes) so a fresh install runs without a
//! mail server.
//!
//! SMTP over TLS (`smtps://`, `?tls=starttls`) always verifies the server's
//! certificate, against `mail.tls_roots` plus `mail.tls_ca_file`; there is
//! no switch to turn verification off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, RootCertStore};

use crate::settings::mail::{TlsMode, smtp_builder};
use crate::settings::{MailSettings, MailTlsRoots, MailTransportKind};

#[derive(Clone)]
pub enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The host in `mail.smtp_url`, for error messages.
        host: String,
    },
    File {
        dir: PathBuf,
        transport: AsyncFileTransport<Tokio1Executor>,
    },
    Log,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp { host, .. } => write!(f, "Transport::Smtp({host})"),
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
                let endpoint = smtp_builder(settings.smtp_url.expose()).map_err(|problem| {
                    anyhow::anyhow!("invalid setting mail.smtp_url: {problem}")
                })?;
                // Read even for plain smtp://, so a wrong path shows at start.
                let roots = TrustedRoots::load(settings)?;
                let tls = |wrap: fn(TlsParameters) -> Tls| {
                    roots
                        .parameters(&endpoint.host)
                        .map(wrap)
                        .map_err(|err| anyhow::anyhow!("could not set up TLS for mail: {err}"))
                };
                let builder = match endpoint.tls {
                    TlsMode::Plain => endpoint.builder,
                    TlsMode::StartTlsRequired => endpoint.builder.tls(tls(Tls::Required)?),
                    TlsMode::StartTlsOpportunistic => {
                        endpoint.builder.tls(tls(Tls::Opportunistic)?)
                    }
                    TlsMode::Implicit => endpoint.builder.tls(tls(Tls::Wrapper)?),
                };
                let pool_size = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
                Self::Smtp {
                    transport: builder
                        .timeout(Some(Duration::from_secs(settings.timeout_secs)))
                        .pool_config(PoolConfig::new().max_size(pool_size))
                        .build(),
                    host: endpoint.host,
                }
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
            Self::Smtp { transport, host } => transport
                .send(message)
                .await
                .map(drop)
                .map_err(|err| SendError(describe_smtp_error(&err, host))),
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

/// The certificate authorities the mail server's certificate is checked
/// against, read once at start.
struct TrustedRoots {
    store: CertificateStore,
    extra: Vec<CertificateDer<'static>>,
}

impl TrustedRoots {
    fn load(settings: &MailSettings) -> anyhow::Result<Self> {
        let mut extra = Vec::new();
        let store = match settings.tls_roots {
            MailTlsRoots::Webpki => CertificateStore::WebpkiRoots,
            MailTlsRoots::System => {
                extra.extend(system_roots().map_err(|problem| {
                    anyhow::anyhow!("invalid setting mail.tls_roots: {problem}")
                })?);
                CertificateStore::None
            }
        };
        let ca_file = &settings.tls_ca_file;
        if !ca_file.as_os_str().is_empty() {
            let certificates = read_ca_file(ca_file).map_err(|problem| {
                anyhow::anyhow!("invalid setting mail.tls_ca_file: {problem}")
            })?;
            log::info!(
                "Mail TLS also trusts {} CA certificate(s) from {}.",
                certificates.len(),
                ca_file.display()
            );
            extra.extend(certificates);
        }
        Ok(Self { store, extra })
    }

    fn parameters(&self, host: &str) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut builder =
            TlsParameters::builder(host.to_owned()).certificate_store(self.store.clone());
        for certificate in &self.extra {
            builder = builder.add_root_certificate(Certificate::from_der(certificate.to_vec())?);
        }
        builder.build()
    }
}

/// `Ok` when rustls can use `certificate` as a trust anchor.
fn usable_as_root(certificate: &CertificateDer<'static>) -> Result<(), rustls::Error> {
    RootCertStore::empty().add(certificate.clone())
}

/// The CA certificates in a PEM file: all must be usable, and at least one.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let name = path.display();
    let pem = std::fs::read(path).map_err(|err| format!("could not read {name}: {err}"))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{name} is not a valid PEM file: {err}"))?;
    if certificates.is_empty() {
        return Err(format!(
            "{name} holds no certificate (expected one or more \
             \"-----BEGIN CERTIFICATE-----\" blocks)"
        ));
    }
    for (number, certificate) in certificates.iter().enumerate() {
        usable_as_root(certificate)
            .map_err(|err| format!("certificate {} in {name} is not usable: {err}", number + 1))?;
    }
    Ok(certificates)
}

/// The operating system's CA certificates (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` override where they are looked for).
fn system_roots() -> Result<Vec<CertificateDer<'static>>, String> {
    let found = rustls_native_certs::load_native_certs();
    let usable: Vec<_> = found
        .certs
        .into_iter()
        .filter(|certificate| usable_as_root(certificate).is_ok())
        .collect();
    if usable.is_empty() {
        let why = found
            .errors
            .first()
            .map(|err| format!(" ({err})"))
            .unwrap_or_default();
        return Err(format!(
            "\"system\", but this machine's certificate store has no usable certificate{why}. \
             Install the ca-certificates package, set SSL_CERT_FILE to a CA bundle, \
             or use tls_roots = \"webpki\"."
        ));
    }
    for err in &found.errors {
        log::warn!("Part of the system certificate store could not be read: {err}");
    }
    log::info!(
        "Mail TLS trusts {} certificates from the system store.",
        usable.len()
    );
    Ok(usable)
}

/// What staff see on /staff/mail: certificate problems say what to fix.
fn describe_smtp_error(err: &lettre::transport::smtp::Error, host: &str) -> String {
    let Some(tls) = tls_error_in(err) else {
        return format!("SMTP: {err}");
    };
    let rustls::Error::InvalidCertificate(problem) = tls else {
        return format!("SMTP: the TLS handshake with the mail server failed ({tls}).");
    };
    match problem {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "The mail server's certificate is not trusted ({tls}). If it uses a private or \
             company CA, set mail.tls_ca_file to that CA's PEM file (or mail.tls_roots = \
             \"system\" if the CA is installed on this machine)."
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "The mail server's certificate is not valid for {host} ({tls}). Use a host \
                 name the certificate names in mail.smtp_url."
            )
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => format!(
            "The mail server's certificate is outside its validity period ({tls}). The \
             server's certificate must be renewed, or this machine's clock is wrong."
        ),
        _ => format!("The mail server's certificate was refused ({tls})."),
    }
}

/// The rustls error behind a failed delivery, if TLS was the problem. lettre
/// wraps it in an `io::Error`, whose `source()` skips the error it carries.
fn tls_error_in<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = err.source();
    }
    None
}
