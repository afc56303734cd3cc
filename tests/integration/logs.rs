//! No secret in any log line: the real `gatehouse serve`, logging at debug
//! level, is driven through the core flows (staff sending an invitation,
//! code login, password logins, a password reset, a visitor link), and
//! nothing secret those flows made appears in what it wrote to stdout or
//! stderr.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, Browser, assert_redirects_to, client_with, code_in_mail, code_on_page, csrf_fields,
};
use crate::support::postgres::fresh_database_url;
use crate::support::smtp::SmtpSink;

/// Everything every crate logs: an operator chasing a problem may turn it on.
const LOG_LEVEL: &str = "trace";

/// Given in the PostgreSQL URL (the test cluster trusts local connections,
/// so it is accepted and ignored); operators' URLs hold real ones.
const DATABASE_PASSWORD: &str = "database-password-in-the-url";

const STAFF_PASSWORD: &str = "staff keeps the keys 1";
const FRED_PASSWORD: &str = "tap dancing shoes 22";
const FRED_WRONG_PASSWORD: &str = "tap dancing slippers 22";
const FRED_NEW_PASSWORD: &str = "top hat white tie 333";

/// Where the binary runs: its directory, database and mail sink.
struct Setup {
    dir: tempfile::TempDir,
    database_url: String,
    secret_key: Option<&'static str>,
    smtp: SmtpSink,
    /// What the CLI commands logged.
    cli_log: Mutex<String>,
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", LOG_LEVEL)
            .env("GATEHOUSE__DATABASE__URL", &self.database_url)
            .env("GATEHOUSE__SERVER__BIND", "127.0.0.1:0")
            .env("GATEHOUSE__SERVER__WORKERS", "1")
            .env("GATEHOUSE__PASSWORDS__ARGON2_MEMORY_KIB", "1024")
            .env("GATEHOUSE__PASSWORDS__ARGON2_ITERATIONS", "1")
            .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
            .env("GATEHOUSE__MAIL__SMTP_URL", self.smtp.url())
            .env("GATEHOUSE__MAIL__POLL_INTERVAL_MS", "100")
            .env("GATEHOUSE__MAIL__RETRY_BASE_MS", "50")
            .env("GATEHOUSE__MAIL__RETRY_MAX_MS", "400")
            .args(args);
        if let Some(key) = self.secret_key {
            command.env("GATEHOUSE__SECRET_KEY", key);
        }
        command
    }

    /// Runs a CLI command to completion (off the async threads, so the mail
    /// sink keeps answering); returns its stdout and keeps its log (stderr).
    async fn run(&self, args: &[&str], stdin: &str) -> String {
        let mut command = self.command(args);
        let stdin = stdin.to_owned();
        let what = args.join(" ");
        let (stdout, log) = tokio::task::spawn_blocking(move || {
            let (ok, stdout, stderr) = crate::cli::run_with_stdin(&mut command, stdin.as_bytes());
            assert!(ok, "gatehouse {what}: {stderr}");
            (stdout, stderr)
        })
        .await
        .expect("the command ran");
        self.cli_log.lock().expect("lock").push_str(&log);
        stdout
    }
}

/// `gatehouse serve` with everything it writes captured; killed if the
/// test ends early.
struct Server {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    address: String,
}

impl Server {
    fn start(setup: &Setup) -> Self {
        let mut child = setup
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let output = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            capture(child.stdout.take().expect("stdout"), output.clone()),
            capture(child.stderr.take().expect("stderr"), output.clone()),
        ];
        let mut server = Self {
            child,
            output,
            readers,
            address: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            let text = server.output.lock().expect("lock").clone();
            if let Some(rest) = text.split("(port ").nth(1) {
                break rest
                    .split(')')
                    .next()
                    .and_then(|port| port.parse::<u16>().ok())
                    .expect("a port number");
            }
            assert!(Instant::now() < deadline, "serve did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        server.address = format!("http://127.0.0.1:{port}");
        server
    }

    fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser {
            address: self.address.clone(),
            client: client_with(jar.clone()),
            jar,
            host: None,
        }
    }

    /// Stops the server (SIGTERM, so it flushes) and returns all it wrote.
    fn stop(mut self) -> String {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        assert!(stopped, "SIGTERM sent");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "a clean exit: {status:?}");
        for reader in self.readers.drain(..) {
            reader.join().expect("reader");
        }
        self.output.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After `stop` this finds the process gone; on a failed test it ends it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(
    mut stream: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(read) = stream.read(&mut buffer) {
            if read == 0 {
                break;
            }
            output
                .lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    })
}

/// The text part of the newest mail whose subject starts with `subject`.
async fn mail_text(smtp: &SmtpSink, count: usize, subject: &str) -> String {
    smtp.wait_for(count)
        .await
        .iter()
        .map(|message| message.parsed())
        .rfind(|mail| mail.subject.starts_with(subject))
        .unwrap_or_else(|| panic!("no mail {subject:?}"))
        .text
}

/// The path (from `/accounts/` on) of the reset link in a mail's text.
fn reset_path_in(text: &str) -> String {
    let start = text
        .find("/accounts/password/reset/")
        .expect("a reset link");
    text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// What a browser holds that would let someone act as it: its session
/// cookie (and the session key inside it: actix signs a cookie by putting a
/// MAC in front of the value) and its CSRF cookie and form token.
async fn browser_secrets(browser: &Browser, who: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Some(session) = browser.cookie("gatehouse_session") {
        if session.len() > 64 {
            let key = session[session.len() - 64..].to_owned();
            found.push((format!("{who}'s session key"), key));
        }
        found.push((format!("{who}'s session cookie"), session));
    }
    if let Some(csrf) = browser.cookie("gatehouse_csrf") {
        found.push((format!("{who}'s CSRF cookie"), csrf));
    }
    let html = browser.get_html("/accounts/password/reset").await;
    found.push((
        format!("{who}'s CSRF form token"),
        csrf_fields(&html)[0].clone(),
    ));
    found
}

async fn no_secret_reaches_the_log_of_a_running_server(backend: Backend) {
    let (database_url, secret_key) = match backend {
        Backend::Sqlite => (String::new(), None),
        Backend::Postgres => match fresh_database_url().await {
            Some(url) => (
                url.replacen(
                    "://postgres@",
                    &format!("://postgres:{DATABASE_PASSWORD}@"),
                    1,
                ),
                Some("test-secret-key-for-postgres-0123456789abcdef"),
            ),
            None => return,
        },
    };
    let dir = tempfile::tempdir().expect("dir");
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("logs.db").display()),
        Backend::Postgres => database_url,
    };
    let setup = Setup {
        dir,
        database_url,
        secret_key,
        smtp: SmtpSink::start().await,
        cli_log: Mutex::default(),
    };
    let mut secrets: Vec<(String, String)> = vec![
        ("the staff password".into(), STAFF_PASSWORD.into()),
        ("Fred's password".into(), FRED_PASSWORD.into()),
        (
            "Fred's mistyped password".into(),
            FRED_WRONG_PASSWORD.into(),
        ),
        ("Fred's new password".into(), FRED_NEW_PASSWORD.into()),
        ("the database password".into(), DATABASE_PASSWORD.into()),
    ];
    setup
        .run(
            &[
                "user",
                "create",
                "--username",
                "boss",
                "--email",
                "boss@example.org",
                "--staff",
                "--password-stdin",
            ],
            &format!("{STAFF_PASSWORD}\n"),
        )
        .await;
    setup
        .run(
            &[
                "user",
                "create",
                "--username",
                "fred",
                "--email",
                "fred@example.org",
                "--password-stdin",
            ],
            &format!("{FRED_PASSWORD}\n"),
        )
        .await;
    let visitor_link = setup
        .run(
            &[
                "visitor",
                "create",
                "--scope",
                "demo",
                "--email",
                "ginger@example.org",
                "--first-name",
                "Ginger",
            ],
            "",
        )
        .await;
    let visitor_link = visitor_link.lines().last().expect("a link").trim();
    let visitor_path = &visitor_link[visitor_link.find("/visitors/").expect("a path")..];
    let visitor_token = visitor_path.split("vid=").nth(1).expect("a token");
    secrets.push(("the visitor token".into(), visitor_token.into()));

    let server = Server::start(&setup);

    // Staff send an invitation from the browser.
    let staff = server.browser();
    assert_redirects_to(
        &staff.login_with_password("boss", STAFF_PASSWORD).await,
        "/",
    );
    let sent = staff
        .post_form(
            "/invites/send",
            &[
                ("email", "eleanor@example.org"),
                ("name", "Eleanor Powell"),
                ("phone", "555-0123"),
            ],
        )
        .await;
    assert_redirects_to(&sent, "/invites/sent");
    let code = code_on_page(&staff.get_html("/invites/sent").await);
    let invitation = mail_text(&setup.smtp, 1, "Your invitation").await;
    assert_eq!(code_in_mail(&invitation), code);
    secrets.push(("the invitation code".into(), code.clone()));
    secrets.push(("the invitation code".into(), code.to_lowercase()));

    // The newcomer follows the mailed link (`?code=` pre-fills) and logs in.
    let newcomer = server.browser();
    let login_link = format!("/accounts/login?code={code}");
    assert_redirects_to(&newcomer.get(&login_link).await, "/accounts/login");
    assert_eq!(
        newcomer.get("/accounts/login").await.status(),
        StatusCode::OK
    );
    assert_redirects_to(&newcomer.login_with_code(&code).await, "/");

    // Fred mistypes his password, logs in, logs out, forgets it, resets it.
    let fred = server.browser();
    assert_eq!(
        fred.login_with_password("fred", FRED_WRONG_PASSWORD)
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_redirects_to(&fred.login_with_password("fred", FRED_PASSWORD).await, "/");
    secrets.extend(browser_secrets(&fred, "Fred (first login)").await);
    fred.post_form("/accounts/logout", &[]).await;
    assert_redirects_to(
        &fred
            .post_form("/accounts/password/reset", &[("login", "fred")])
            .await,
        "/accounts/password/reset/sent",
    );
    let reset_path = reset_path_in(&mail_text(&setup.smtp, 2, "Reset your password").await);
    let reset_token = reset_path.rsplit('/').next().expect("a token").to_owned();
    secrets.push(("the reset token".into(), reset_token));
    // As a browser does: follow a redirect, if any, to the form.
    let opened = fred.get(&reset_path).await;
    let form_path = match opened.status() {
        StatusCode::SEE_OTHER => crate::helpers::location(&opened),
        _ => reset_path.clone(),
    };
    assert_eq!(fred.get(&form_path).await.status(), StatusCode::OK);
    let done = fred
        .post_form(
            &form_path,
            &[
                ("new_password", FRED_NEW_PASSWORD),
                ("confirm_password", FRED_NEW_PASSWORD),
            ],
        )
        .await;
    assert_redirects_to(&done, "/accounts/password/reset/done");
    assert_redirects_to(
        &fred.login_with_password("fred", FRED_NEW_PASSWORD).await,
        "/",
    );

    // Ginger opens her visitor link and enters.
    let ginger = server.browser();
    assert_redirects_to(&ginger.follow_link(visitor_path).await, "/visitors/demo");
    assert!(
        ginger
            .get_html("/visitors/demo")
            .await
            .contains("Visiting as Ginger")
    );

    for (who, browser) in [
        ("staff", &staff),
        ("the newcomer", &newcomer),
        ("Fred", &fred),
        ("Ginger", &ginger),
    ] {
        secrets.extend(browser_secrets(browser, who).await);
    }

    let log = server.stop();
    // Nothing secret, in what the server or the commands before it wrote...
    let log = format!("{}{log}", setup.cli_log.lock().expect("lock"));
    for (what, secret) in &secrets {
        assert!(secret.len() >= 9, "{what} is too short to search for");
        if let Some(line) = log.lines().find(|line| line.contains(secret.as_str())) {
            panic!("{what} is in the log: {line}");
        }
    }
    // ...which did capture the requests, with their methods, tokens redacted.
    for line in [
        "\"GET /accounts/login\"",
        "\"POST /accounts/login/code\"",
        "\"POST /invites/send\"",
        "\"GET /accounts/password/reset/[redacted]\" 303",
        "\"POST /accounts/password/reset/set-password\" 303",
        "\"GET /visitors/demo\" 200",
        "\"POST /visitors/enter\" 303",
    ] {
        let access_log: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("middleware::logger"))
            .collect();
        assert!(
            log.contains(line),
            "no {line} in the access log:\n{access_log:#?}"
        );
    }
}

backend_tests!(no_secret_reaches_the_log_of_a_running_server);
