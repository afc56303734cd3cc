//! A real SMTP server for the tests: a small tokio listener on 127.0.0.1
//! that speaks enough ESMTP for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT), keeps every message it receives, and can be told to refuse mail
//! (a temporary 451, as a server in trouble answers). `start_tls` makes one
//! that speaks TLS (STARTTLS or from the first byte) with a certificate from
//! a throwaway `TestCa`, and offers AUTH PLAIN only once TLS is up, as mail
//! providers do.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, with CRLF line ends.
    pub data: String,
    /// True when the message came over TLS.
    pub over_tls: bool,
    /// The AUTH PLAIN response (base64) the client logged in with, if any.
    pub auth_plain: Option<String>,
}

/// How a TLS sink starts TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain greeting, STARTTLS offered (port 587 style, `?tls=starttls`).
    StartTls,
    /// TLS from the first byte (port 465 style, `smtps://`).
    Implicit,
}

/// A certificate authority made at test time, with its certificate in a
/// PEM file for `mail.tls_ca_file`.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Gatehouse throwaway test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("CA file written");
        Self { issuer, dir }
    }

    /// The CA certificate (PEM), for `mail.tls_ca_file`.
    pub fn pem_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate and key for `names` (DNS names or IP addresses).
    fn server_config(&self, names: &[&str]) -> rustls::ServerConfig {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sink.test");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().expect("server key");
        let certificate = params
            .signed_by(&key, &*self.issuer)
            .expect("server certificate");
        let chain = vec![certificate.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .expect("server key DER");
        // The provider lettre uses (ring), so no second one is built.
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server TLS config")
    }
}

/// What a test checks in a message: decoded headers and both parts.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub from: String,
    /// The display name in `From:`.
    pub from_name: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Received {
    pub fn parsed(&self) -> Parsed {
        let message = mail_parser::MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("a parsable message");
        let address = |addr: Option<&mail_parser::Address>| {
            addr.and_then(|addr| addr.first())
                .and_then(|addr| addr.address())
                .unwrap_or_default()
                .to_owned()
        };
        Parsed {
            from: address(message.from()),
            from_name: message
                .from()
                .and_then(|addr| addr.first())
                .and_then(|addr| addr.name())
                .unwrap_or_default()
                .to_owned(),
            to: address(message.to()),
            subject: message.subject().unwrap_or_default().to_owned(),
            text: message.body_text(0).unwrap_or_default().into_owned(),
            html: message.body_html(0).unwrap_or_default().into_owned(),
        }
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    arrived: Notify,
    refuse: AtomicBool,
}

pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    tls: Option<SinkTls>,
}

/// A port nothing listens on (yet): for "the mail server is down".
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Listens on `port` (0 picks one).
    pub async fn start_on(port: u16) -> Self {
        Self::listen(port, None).await
    }

    /// A sink speaking TLS in `mode`, its certificate for `names` issued by `ca`.
    pub async fn start_tls(mode: SinkTls, ca: &TestCa, names: &[&str]) -> Self {
        let acceptor = TlsAcceptor::from(Arc::new(ca.server_config(names)));
        Self::listen(0, Some((mode, acceptor))).await
    }

    async fn listen(port: u16, tls: Option<(SinkTls, TlsAcceptor)>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the SMTP sink binds");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let mode = tls.as_ref().map(|(mode, _)| *mode);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accepting.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // A client that hangs up mid-session, or refuses the
                    // certificate, is no test failure.
                    let _ = serve(stream, &shared, tls).await;
                });
            }
        });
        Self {
            port,
            shared,
            tls: mode,
        }
    }

    /// The `mail.smtp_url` that reaches this sink (on 127.0.0.1) in its mode.
    pub fn url(&self) -> String {
        self.url_with("", "127.0.0.1")
    }

    /// The URL with `userinfo` (`user:password@`, or empty) and `host`.
    pub fn url_with(&self, userinfo: &str, host: &str) -> String {
        let port = self.port;
        match self.tls {
            None => format!("smtp://{userinfo}{host}:{port}"),
            Some(SinkTls::StartTls) => format!("smtp://{userinfo}{host}:{port}?tls=starttls"),
            Some(SinkTls::Implicit) => format!("smtps://{userinfo}{host}:{port}"),
        }
    }

    /// While on, every MAIL FROM gets `451 4.3.0` (try again later).
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().expect("lock").clone()
    }

    /// Waits (up to 30 s) until `count` messages have arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let arrived = self.shared.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {count} messages, the SMTP sink has {}",
                    self.messages().len()
                );
            }
        }
    }
}

async fn serve(
    stream: TcpStream,
    shared: &Shared,
    tls: Option<(SinkTls, TlsAcceptor)>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    match tls {
        None => converse(stream, shared, Security::Plain, true)
            .await
            .map(drop),
        Some((SinkTls::Implicit, acceptor)) => {
            let stream = acceptor.accept(stream).await?;
            converse(stream, shared, Security::Tls, true)
                .await
                .map(drop)
        }
        Some((SinkTls::StartTls, acceptor)) => {
            let Some(stream) = converse(stream, shared, Security::OffersStartTls, true).await?
            else {
                return Ok(());
            };
            let stream = acceptor.accept(stream).await?;
            converse(stream, shared, Security::Tls, false)
                .await
                .map(drop)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    OffersStartTls,
    Tls,
}

/// One SMTP conversation; returns the stream when the client asked for
/// STARTTLS (nothing is buffered then: the client waits for our 220).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    shared: &Shared,
    security: Security,
    greet: bool,
) -> std::io::Result<Option<S>> {
    let mut conn = BufReader::new(stream);
    if greet {
        conn.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    }
    let over_tls = security == Security::Tls;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth_plain = None;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => match security {
                Security::Plain => b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                Security::OffersStartTls => {
                    b"250-sink.test\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n"
                }
                Security::Tls => {
                    b"250-sink.test\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SMTPUTF8\r\n"
                }
            },
            "STARTTLS" if security == Security::OffersStartTls => {
                conn.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                conn.flush().await?;
                return Ok(Some(conn.into_inner()));
            }
            "AUTH" if over_tls => {
                auth_plain = command
                    .strip_prefix("AUTH PLAIN ")
                    .map(|response| response.trim().to_owned());
                b"235 2.7.0 Authentication successful\r\n"
            }
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" if shared.refuse.load(Ordering::SeqCst) => {
                b"451 4.3.0 Mail server temporarily refusing mail\r\n"
            }
            "MAIL" => {
                from = between_brackets(&command);
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(between_brackets(&command));
                b"250 OK\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "DATA" => {
                conn.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut conn).await?;
                shared.messages.lock().expect("lock").push(Received {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                    over_tls,
                    auth_plain: auth_plain.clone(),
                });
                shared.arrived.notify_waiters();
                b"250 OK: queued\r\n"
            }
            "QUIT" => {
                conn.write_all(b"221 Bye\r\n").await?;
                conn.flush().await?;
                return Ok(None);
            }
            _ => b"502 Command not implemented\r\n",
        };
        conn.write_all(reply).await?;
        conn.flush().await?;
    }
}

async fn read_data(lines: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

fn between_brackets(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
