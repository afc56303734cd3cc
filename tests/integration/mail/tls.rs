//! Mail over TLS against an SMTP server the test starts, with a certificate
//! from a throwaway CA: STARTTLS and implicit TLS deliver when
//! `mail.tls_ca_file` names the CA; without it nothing is lost and staff are
//! told what to set; a bad CA file stops `serve` with the file named.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_redirects_to, code_in_mail, code_on_page, spawn_app_with, unescape,
};
use crate::support::smtp::{SinkTls, SmtpSink, TestCa};
use gatehouse::settings::{Secret, Settings};

const PASSWORD: &str = "s3cret-pass";
/// base64("\0mailer\0s3cret-pass"): the AUTH PLAIN lettre sends.
const AUTH_PLAIN: &str = "AG1haWxlcgBzM2NyZXQtcGFzcw==";

/// A page's text as staff read it (Tera escapes quotes and apostrophes).
fn as_read(html: &str) -> String {
    unescape(html)
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

/// A staff-logged-in app whose mail goes to `url`, trusting `ca` if given.
async fn app_mailing(backend: Backend, url: String, ca: Option<&TestCa>) -> Option<TestApp> {
    let ca_file = ca.map(TestCa::pem_file);
    let app = spawn_app_with(backend, move |settings: &mut Settings| {
        settings.mail.smtp_url = Secret::new(url);
        if let Some(ca_file) = ca_file {
            settings.mail.tls_ca_file = ca_file;
        }
    })
    .await?;
    app.staff_login().await;
    Some(app)
}

/// Sends an invitation over `mode` with the CA trusted; the sink gets it
/// over TLS, with the login, and the code works.
async fn delivers_over(backend: Backend, mode: SinkTls, host: &str) {
    let ca = TestCa::new();
    let sink = SmtpSink::start_tls(mode, &ca, &["localhost", "127.0.0.1"]).await;
    let url = sink.url_with(&format!("mailer:{PASSWORD}@"), host);
    let Some(app) = app_mailing(backend, url, Some(&ca)).await else {
        return;
    };
    let code = app
        .send_invite_and_read_code("fred@example.org", "Fred Astaire")
        .await;
    let mail = &sink.wait_for(1).await[0];
    assert!(mail.over_tls, "{mode:?}: the message came over TLS");
    assert_eq!(
        mail.auth_plain.as_deref(),
        Some(AUTH_PLAIN),
        "{mode:?}: logged in, inside TLS"
    );
    assert_eq!(mail.to, ["fred@example.org"]);
    assert_eq!(code_in_mail(&mail.parsed().text), code);
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL",
        1,
    )
    .await;
    app.eventually("SELECT COUNT(*) FROM invites WHERE sent_at IS NOT NULL", 1)
        .await;
}

async fn starttls_delivers_when_the_ca_file_is_trusted(backend: Backend) {
    delivers_over(backend, SinkTls::StartTls, "127.0.0.1").await;
}

async fn implicit_tls_delivers_when_the_ca_file_is_trusted(backend: Backend) {
    delivers_over(backend, SinkTls::Implicit, "localhost").await;
}

/// Without the CA file the certificate is refused in both modes: the page
/// still succeeds, the mail waits in the outbox, /staff/mail says to set
/// mail.tls_ca_file (and never shows the SMTP password); once an instance
/// trusts the CA, the waiting mail goes out.
async fn an_untrusted_certificate_keeps_the_mail_and_tells_staff_what_to_set(backend: Backend) {
    for mode in [SinkTls::StartTls, SinkTls::Implicit] {
        let ca = TestCa::new();
        let sink = SmtpSink::start_tls(mode, &ca, &["localhost", "127.0.0.1"]).await;
        let url = sink.url_with(&format!("mailer:{PASSWORD}@"), "127.0.0.1");
        let Some(app) = app_mailing(backend, url.clone(), None).await else {
            return;
        };
        let response = app
            .send_invite("ginger@example.org", "Ginger Rogers", "")
            .await;
        assert_redirects_to(&response, "/invites/sent");
        let code = code_on_page(&app.get_html("/invites/sent").await);
        app.eventually(
            "SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending' AND attempts >= 2 \
             AND last_error IS NOT NULL AND body IS NOT NULL",
            1,
        )
        .await;
        assert!(sink.messages().is_empty(), "{mode:?}: nothing delivered");

        let page = as_read(&app.get_html("/staff/mail").await);
        assert!(page.contains("ginger@example.org"), "{page}");
        assert!(page.contains(">retrying<"), "{mode:?}: {page}");
        assert!(
            page.contains("The mail server's certificate is not trusted ("),
            "{mode:?}: says what is wrong:\n{page}"
        );
        assert!(
            page.contains("set mail.tls_ca_file to that CA's PEM file"),
            "{mode:?}: says what to fix:\n{page}"
        );
        assert!(page.contains("UnknownIssuer"), "{mode:?}: the detail");
        assert!(!page.contains(PASSWORD), "{mode:?}: no SMTP password shown");

        // The operator sets mail.tls_ca_file and restarts: the same message goes out.
        let database_url = app.state.settings.database.url.clone();
        let ca_file = ca.pem_file();
        let fixed = spawn_app_with(backend, move |settings| {
            settings.database.url = database_url;
            settings.mail.smtp_url = Secret::new(url);
            settings.mail.tls_ca_file = ca_file;
        })
        .await
        .expect("an instance that trusts the CA");
        let mail = &sink.wait_for(1).await[0];
        assert!(mail.over_tls);
        assert_eq!(code_in_mail(&mail.parsed().text), code, "{mode:?}");
        fixed
            .eventually(
                "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL",
                1,
            )
            .await;
    }
}

/// A trusted certificate for another name is refused too, and staff are told
/// which name the certificate must carry.
async fn a_certificate_for_another_host_name_is_refused_with_the_name_shown(backend: Backend) {
    let ca = TestCa::new();
    let sink = SmtpSink::start_tls(SinkTls::Implicit, &ca, &["mail.example.org"]).await;
    let Some(app) = app_mailing(backend, sink.url(), Some(&ca)).await else {
        return;
    };
    app.send_invite("cyd@example.org", "Cyd Charisse", "").await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending' AND last_error IS NOT NULL",
        1,
    )
    .await;
    let page = as_read(&app.get_html("/staff/mail").await);
    assert!(
        page.contains("The mail server's certificate is not valid for 127.0.0.1"),
        "{page}"
    );
    assert!(
        page.contains("mail.example.org"),
        "the names it has: {page}"
    );
    assert!(sink.messages().is_empty());
}

backend_tests!(
    starttls_delivers_when_the_ca_file_is_trusted,
    implicit_tls_delivers_when_the_ca_file_is_trusted,
    an_untrusted_certificate_keeps_the_mail_and_tells_staff_what_to_set,
    a_certificate_for_another_host_name_is_refused_with_the_name_shown,
);

/// Runs `gatehouse serve` in `dir` with SMTP over TLS and `ca_file`; returns
/// (success, stderr). A serve that does start is stopped after 60 s.
fn serve_with_ca_file(dir: &std::path::Path, ca_file: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "GATEHOUSE__DATABASE__URL",
            format!("sqlite://{}?mode=rwc", dir.join("tls.db").display()),
        )
        .env("GATEHOUSE__SERVER__BIND", "127.0.0.1:0")
        .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
        .env(
            "GATEHOUSE__MAIL__SMTP_URL",
            format!("smtps://mailer:{PASSWORD}@127.0.0.1:1"),
        )
        .env("GATEHOUSE__MAIL__TLS_CA_FILE", ca_file)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_to_start_with_a_ca_file_it_cannot_use_and_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing-ca.pem");
    let not_pem = dir.path().join("not-pem.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").expect("write");
    let broken = dir.path().join("broken-ca.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    for (file, problem) in [
        (&missing, "could not read"),
        (&not_pem, "holds no certificate"),
        (&broken, "certificate 1 in"),
    ] {
        let (ok, stderr) = serve_with_ca_file(dir.path(), file);
        assert!(!ok, "{}: serve refused to start", file.display());
        assert!(
            stderr.contains("invalid setting mail.tls_ca_file"),
            "{stderr}"
        );
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(problem), "{problem}: {stderr}");
        assert!(!stderr.contains(PASSWORD), "no SMTP password: {stderr}");
    }
}

/// `gatehouse invite … --send` with `mail.tls_roots = "system"`, the system
/// store being `ssl_cert_file` (as SSL_CERT_FILE); returns (success, stdout,
/// stderr).
async fn invite_send_with_system_roots(
    dir: &std::path::Path,
    smtp_url: String,
    ssl_cert_file: std::path::PathBuf,
) -> (bool, String, String) {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "GATEHOUSE__DATABASE__URL",
                format!("sqlite://{}?mode=rwc", dir.join("tls.db").display()),
            )
            .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
            .env("GATEHOUSE__MAIL__SMTP_URL", smtp_url)
            .env("GATEHOUSE__MAIL__TLS_ROOTS", "system")
            .env("SSL_CERT_FILE", ssl_cert_file)
            .env("SSL_CERT_DIR", dir.join("no-such-dir"))
            .args(["invite", "--email", "fred@example.org", "--send"])
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("the command ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_roots_trust_the_ca_in_the_system_store_and_an_empty_store_refuses_to_start() {
    let ca = TestCa::new();
    let sink = SmtpSink::start_tls(SinkTls::StartTls, &ca, &["localhost", "127.0.0.1"]).await;
    let dir = tempfile::tempdir().expect("dir");

    let (ok, stdout, stderr) =
        invite_send_with_system_roots(dir.path(), sink.url(), ca.pem_file()).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("Mail sent to fred@example.org.")
    );
    assert!(sink.wait_for(1).await[0].over_tls);

    let (ok, _, stderr) =
        invite_send_with_system_roots(dir.path(), sink.url(), dir.path().join("none.pem")).await;
    assert!(!ok, "no usable system certificate: refused");
    assert!(
        stderr.contains("invalid setting mail.tls_roots") && stderr.contains("SSL_CERT_FILE"),
        "{stderr}"
    );
    assert_eq!(sink.messages().len(), 1);
}
