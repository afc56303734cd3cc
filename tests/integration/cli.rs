//! The `gatehouse` binary as operators and scripts use it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_form_error, assert_redirects_to, code_in_mail, spawn_app_with,
};
use crate::support::smtp::{SmtpSink, free_port};

pub fn gatehouse(dir: &std::path::Path) -> Command {
    in_test_env(Command::new(env!("CARGO_BIN_EXE_gatehouse")), dir)
}

/// `gatehouse ARGS` on a terminal (a pseudo-terminal made by util-linux
/// `script`), mailing to `sink`, with `input` typed in; `None` when
/// `script` is missing. Returns success and what the terminal showed.
async fn on_a_terminal(
    dir: &std::path::Path,
    sink: &SmtpSink,
    args: &str,
    input: &[u8],
) -> Option<(bool, String)> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("util-linux `script` not found; skipping a terminal test");
        return None;
    }
    let mut command = in_test_env(Command::new("script"), dir);
    command
        .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
        .env("GATEHOUSE__MAIL__SMTP_URL", sink.url())
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_gatehouse")),
            "/dev/null",
        ]);
    let input = input.to_vec();
    let (ok, output, _) = tokio::task::spawn_blocking(move || run_with_stdin(&mut command, &input))
        .await
        .expect("ran");
    Some((ok, output))
}

fn in_test_env(mut command: Command, dir: &std::path::Path) -> Command {
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "GATEHOUSE__DATABASE__URL",
            format!("sqlite://{}?mode=rwc", dir.join("cli.db").display()),
        )
        .env("GATEHOUSE__PASSWORDS__ARGON2_MEMORY_KIB", "1024")
        .env("GATEHOUSE__PASSWORDS__ARGON2_ITERATIONS", "1")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> (bool, String, String) {
    run_with_stdin(command, b"")
}

/// Runs to completion with `input` on standard input: (success, stdout, stderr).
pub fn run_with_stdin(command: &mut Command, input: &[u8]) -> (bool, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the binary off the async threads, so the test's own servers (an
/// SMTP sink) keep answering meanwhile.
pub async fn run_beside(mut command: Command) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .expect("the command ran")
}

/// The app, in-process, on the database the CLI wrote (same secret file).
pub async fn app_on(dir: &std::path::Path) -> TestApp {
    app_on_with(dir, |_| {}).await
}

async fn app_on_with(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut gatehouse::settings::Settings),
) -> TestApp {
    let url = format!("sqlite://{}?mode=rwc", dir.join("cli.db").display());
    spawn_app_with(Backend::Sqlite, |settings| {
        settings.database.url = url;
        adjust(settings);
    })
    .await
    .expect("sqlite app")
}

/// The last line of a command's output.
fn last_line(output: &str) -> String {
    output.lines().last().unwrap_or_default().trim().to_owned()
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["secret", "--help"],
        vec!["invite", "--help"],
        vec!["user", "--help"],
        vec!["user", "create", "--help"],
        vec!["visitor", "create", "--help"],
        vec!["purge", "--help"],
        vec!["site", "--help"],
        vec!["site", "add", "--help"],
        vec!["import", "django", "--help"],
    ] {
        let (ok, stdout, _) = run(gatehouse(dir.path()).args(&args));
        assert!(ok, "{args:?}");
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_no_send_prints_a_code_that_logs_in() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args([
        "invite",
        "--email",
        "Fred@Example.org",
        "--name",
        "Fred Astaire",
        "--phone",
        "555-0199",
        "--no-send",
    ]));
    assert!(ok, "{stderr}");
    let code = stdout
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_owned();
    assert!(
        gatehouse::invites::InviteCode::parse(&code).is_ok(),
        "{code:?}"
    );
    assert_eq!(code.len(), 9);
    assert!(stdout.contains("fred@example.org"));

    let app = app_on(dir.path()).await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    assert_eq!(app.whoami().await.as_deref(), Some("fred@example.org"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE first_name = 'Fred' AND phone = '555-0199'")
            .await,
        1
    );
}

#[test]
fn invite_without_an_email_and_no_terminal_says_what_is_missing() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args(["invite", "--no-send"]));
    assert!(!ok);
    assert!(stderr.contains("Missing parameter --email"), "{stderr}");
    assert!(stdout.is_empty());
    let (ok, _, stderr) = run(gatehouse(dir.path()).args(["invite", "--email", "not-an-email"]));
    assert!(!ok);
    assert!(
        stderr.contains("--email: Enter a valid e-mail address"),
        "{stderr}"
    );
}

#[test]
fn invite_for_an_unknown_domain_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, stderr) =
        run(gatehouse(dir.path()).args(["invite", "--email", "a@example.org", "--domain", "nope"]));
    assert!(!ok);
    assert!(
        stderr.contains("A site with domain 'nope' does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1"),
        "known sites are listed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, stdout, stderr) = run_with_stdin(
        gatehouse(dir.path()).args([
            "user",
            "create",
            "--username",
            "boss",
            "--email",
            "boss@example.org",
            "--staff",
            "--password-stdin",
        ]),
        b"a very long password\nignored second line\n",
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Created staff member boss"));

    let app = app_on(dir.path()).await;
    assert_redirects_to(
        &app.login_with_password("boss", "a very long password")
            .await,
        "/",
    );
    assert!(app.get_html("/").await.contains("as a staff member"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.made_staff' \
             AND actor = 'command line' AND subject LIKE 'boss (#%)'"
        )
        .await,
        1
    );

    // The same username again is refused with a message.
    let (ok, _, stderr) = run(gatehouse(dir.path()).args([
        "user",
        "create",
        "--username",
        "BOSS",
        "--email",
        "other@example.org",
    ]));
    assert!(!ok);
    assert!(
        stderr.contains("That username is already taken"),
        "{stderr}"
    );
    // A short password is refused.
    let (ok, _, stderr) = run_with_stdin(
        gatehouse(dir.path()).args([
            "user",
            "create",
            "--username",
            "x",
            "--email",
            "x@example.org",
            "--password-stdin",
        ]),
        b"short\n",
    );
    assert!(!ok);
    assert!(stderr.contains("Use at least 10 characters"), "{stderr}");
}

#[test]
fn an_out_of_range_code_length_refuses_to_start() {
    let dir = tempfile::tempdir().expect("dir");
    for length in ["5", "31"] {
        let (ok, _, stderr) = run(gatehouse(dir.path())
            .env("GATEHOUSE__INVITES__CODE_LENGTH", length)
            .arg("migrate"));
        assert!(!ok);
        assert!(
            stderr.contains("invalid setting invites.code_length: must be between 6 and 30"),
            "{stderr}"
        );
    }
    let (ok, _, stderr) = run(gatehouse(dir.path())
        .env("GATEHOUSE__SERVER__NO_SUCH_KEY", "1")
        .arg("migrate"));
    assert!(!ok, "unknown keys are refused");
    assert!(stderr.contains("no_such_key"), "{stderr}");
}

#[test]
fn an_unknown_time_zone_refuses_to_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, stderr) = run(gatehouse(dir.path())
        .env("GATEHOUSE__SERVER__TIME_ZONE", "Europe/Atlantis")
        .arg("migrate"));
    assert!(!ok);
    assert!(
        stderr.contains("server.time_zone")
            && stderr.contains("unknown time zone \"Europe/Atlantis\"")
            && stderr.contains("Europe/Berlin"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(gatehouse(dir.path())
        .env("GATEHOUSE__SERVER__TIME_ZONE", "Europe/Berlin")
        .arg("migrate"));
    assert!(ok, "a known zone is accepted: {stderr}");
}

#[test]
fn postgres_without_a_secret_key_refuses_to_serve_and_says_how() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, stderr) = run(gatehouse(dir.path())
        .env("GATEHOUSE__DATABASE__URL", "postgres://127.0.0.1:1/none")
        .arg("serve"));
    assert!(!ok);
    assert!(stderr.contains("gatehouse secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_the_database_prints_a_staff_code_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = gatehouse(dir.path())
        .env("GATEHOUSE__SERVER__BIND", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        let line = rx
            .recv_timeout(deadline - Instant::now())
            .expect("serve logs its port");
        if let Some(rest) = line.split("(port ").nth(1) {
            break rest
                .split(')')
                .next()
                .expect("port")
                .parse::<u16>()
                .expect("number");
        }
    };
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert!(dir.path().join("cli.db").exists());
    let secret = dir.path().join("cli.db.secret");
    assert!(
        secret.exists(),
        "a secret key was generated beside the database"
    );

    // The printed staff code logs in as staff.
    let mut stdout = String::new();
    let mut out = child.stdout.take().expect("stdout");
    // SIGTERM first so stdout is complete, then read it.
    let code_line = {
        // stdout is block-buffered into a pipe; stop the server to flush it.
        assert!(send_sigterm(child.id()));
        let status = child.wait().expect("wait");
        assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
        std::io::Read::read_to_string(&mut out, &mut stdout).expect("read");
        stdout
            .lines()
            .find(|line| line.starts_with("    ") && !line.trim().is_empty())
            .expect("a code line")
            .trim()
            .to_owned()
    };
    assert!(stdout.contains("one-time invitation code"));
    assert!(stdout.contains(&format!("/accounts/login?code={code_line}")));

    let app = app_on(dir.path()).await;
    assert_redirects_to(&app.login_with_code(&code_line).await, "/");
    assert!(app.get_html("/").await.contains("as a staff member"));
}

fn send_sigterm(pid: u32) -> bool {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_create_prints_a_working_link_and_purge_reports_counts() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args([
        "visitor",
        "create",
        "--scope",
        "demo",
        "--email",
        "Ginger@Example.org",
        "--first-name",
        "Ginger",
        "--session-expiry",
        "3600",
    ]));
    assert!(ok, "{stderr}");
    let link = stdout.lines().last().expect("a link").trim().to_owned();
    let path = link
        .strip_prefix("http://127.0.0.1:8080")
        .expect("the link uses server.base_url");
    assert!(path.starts_with("/visitors/demo?vid="), "{path}");

    let app = app_on(dir.path()).await;
    assert_redirects_to(&app.follow_link(path).await, "/visitors/demo");
    assert!(
        app.get_html("/visitors/demo")
            .await
            .contains("Visiting as Ginger")
    );

    let (ok, _, stderr) = run(gatehouse(dir.path()).args([
        "visitor",
        "create",
        "--scope",
        "Bad Scope",
        "--email",
        "a@example.org",
    ]));
    assert!(!ok);
    assert!(stderr.contains("--scope: A scope is"), "{stderr}");

    app.flush_logs().await;
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {}",
        app.days_ago(100)
    ))
    .await;
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args(["purge", "--dry-run"]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "Would delete 1 visitor(s) expired over 90 days ago, with 2 visit log row(s)."
        ),
        "{stdout}"
    );
    let (ok, stdout, _) = run(gatehouse(dir.path()).arg("purge"));
    assert!(ok);
    assert!(stdout.contains("Deleted 1 visitor(s)"), "{stdout}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM visitors").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_for_another_site_are_printed_on_its_domain() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, stderr) = run(gatehouse(dir.path()).args([
        "site",
        "add",
        "--domain",
        "club.test",
        "--name",
        "Tango Club",
    ]));
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args([
        "visitor",
        "create",
        "--scope",
        "demo",
        "--email",
        "ginger@example.org",
        "--first-name",
        "Ginger",
        "--domain",
        "club.test",
    ]));
    assert!(ok, "{stderr}");
    let link = last_line(&stdout);
    // base_url is http://127.0.0.1:8080: its scheme and port, the site's host.
    let path = link
        .strip_prefix("http://club.test:8080")
        .unwrap_or_else(|| panic!("the link is on the club's domain: {link}"));
    assert!(path.starts_with("/visitors/demo?vid="), "{path}");

    let app = app_on(dir.path()).await;
    let club = app.new_browser().on_host("club.test:8080");
    let landing = club.get(path).await;
    assert_eq!(landing.status(), reqwest::StatusCode::OK);
    let html = landing.text().await.expect("body");
    assert!(html.contains("Continue as Ginger"), "{html}");
    assert!(!html.contains("This visitor link is no longer valid"));
    assert_redirects_to(&club.follow_link(path).await, "/visitors/demo");
    assert!(
        club.get_html("/visitors/demo")
            .await
            .contains("Visiting as Ginger")
    );

    // Invitations for that site carry its domain too.
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args([
        "invite",
        "--email",
        "fred@example.org",
        "--name",
        "Fred",
        "--domain",
        "club.test",
        "--no-send",
    ]));
    assert!(ok, "{stderr}");
    let code = last_line(&stdout);
    assert!(
        stdout.contains(&format!("http://club.test:8080/accounts/login?code={code}")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_send_mails_the_code_through_the_outbox_and_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let sink = SmtpSink::start().await;
    let mut command = gatehouse(dir.path());
    command
        .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
        .env("GATEHOUSE__MAIL__SMTP_URL", sink.url())
        .env(
            "GATEHOUSE__MAIL__FROM",
            "Club Office <office@club.example.org>",
        )
        .args([
            "invite",
            "--email",
            "fred@example.org",
            "--name",
            "Fred Astaire",
            "--send",
        ]);
    let (ok, stdout, stderr) = run_beside(command).await;
    assert!(ok, "{stderr}");
    assert_eq!(last_line(&stdout), "Mail sent to fred@example.org.");
    let mail = &sink.wait_for(1).await[0];
    let parsed = mail.parsed();
    assert_eq!(parsed.from, "office@club.example.org");
    assert!(
        parsed
            .text
            .contains("You have been invited to join Gatehouse")
    );
    let code = code_in_mail(&parsed.text);
    assert!(!stdout.contains(&code), "the code is mailed, not printed");

    let app = app_on(dir.path()).await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL")
            .await,
        1
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'invite.sent' \
             AND actor = 'command line' AND subject = 'fred@example.org'"
        )
        .await,
        1
    );
    assert_redirects_to(&app.login_with_code(&code).await, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_send_with_the_mail_server_down_leaves_the_mail_queued_for_serve() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let mut command = gatehouse(dir.path());
    command
        .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
        .env("GATEHOUSE__MAIL__SMTP_URL", &smtp_url)
        // The failed attempt's wait before the next one (30 s by default).
        .env("GATEHOUSE__MAIL__RETRY_BASE_MS", "50")
        .args(["invite", "--email", "fred@example.org", "--send"]);
    let (ok, stdout, stderr) = run_beside(command).await;
    assert!(ok, "nothing is lost, so this is no failure: {stderr}");
    assert!(stdout.contains("is queued, not sent yet"), "{stdout}");

    // `serve` (here the in-process app on the same database) delivers it
    // once the mail server answers.
    let sink = SmtpSink::start_on(port).await;
    let app = app_on_with(dir.path(), |settings| {
        settings.mail.smtp_url = gatehouse::settings::Secret::new(smtp_url);
    })
    .await;
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(mail.to, ["fred@example.org"]);
    app.eventually("SELECT COUNT(*) FROM invites WHERE sent_at IS NOT NULL", 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_invite_asks_whether_to_send_the_invitation() {
    let dir = tempfile::tempdir().expect("dir");
    let sink = SmtpSink::start().await;
    let args = "invite --email fred@example.org --name Fred --phone 555-0100";
    let Some((ok, output)) = on_a_terminal(dir.path(), &sink, args, b"y\n").await else {
        return;
    };
    assert!(ok, "{output}");
    assert!(
        output.contains("Send the invitation now? [y/N]"),
        "{output}"
    );
    assert!(
        output.contains("Mail sent to fred@example.org."),
        "{output}"
    );
    sink.wait_for(1).await;

    // Name and phone are asked for too; "no" to sending prints the code.
    let args = "invite --email ginger@example.org";
    let Some((ok, output)) = on_a_terminal(dir.path(), &sink, args, b"Ginger Rogers\n\nn\n").await
    else {
        return;
    };
    assert!(ok, "{output}");
    assert!(output.contains("Their full name (optional):"), "{output}");
    let code = last_line(&output);
    assert!(
        gatehouse::invites::InviteCode::parse(&code).is_ok(),
        "{output}"
    );
    assert_eq!(sink.messages().len(), 1, "nothing more was mailed");

    // A CSV import on a terminal draws a progress bar and still reports each
    // skipped row and the summary.
    let mut csv = String::from("email,name,phone\nbad-row,,\n");
    for n in 0..40 {
        csv.push_str(&format!("tty{n}@example.org,Tty {n},\n"));
    }
    let file = dir.path().join("tty.csv");
    std::fs::write(&file, csv).expect("write");
    let args = format!("invite --csv {}", file.display());
    let Some((ok, output)) = on_a_terminal(dir.path(), &sink, &args, b"").await else {
        return;
    };
    assert!(ok, "{output}");
    assert!(output.contains("line 2: skipped:"), "{output}");
    assert!(
        output.contains("Created 40 invitations on 127.0.0.1 (1 row skipped); 40 e-mailed."),
        "{output}"
    );
    sink.wait_for(41).await;
}

#[test]
fn invite_send_is_refused_when_mail_only_goes_to_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, stderr) = run(gatehouse(dir.path())
        .env("GATEHOUSE__MAIL__TRANSPORT", "log")
        .args(["invite", "--email", "fred@example.org", "--send"]));
    assert!(!ok);
    assert!(stderr.contains("mail.transport is \"log\""), "{stderr}");
    assert!(stderr.contains("--no-send"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_with_an_open_invitation_needs_replace_for_a_fresh_code() {
    let dir = tempfile::tempdir().expect("dir");
    let invite = |extra: &[&str]| {
        let mut command = gatehouse(dir.path());
        command.args(["invite", "--email", "fred@example.org", "--no-send"]);
        command.args(extra);
        run(&mut command)
    };
    let (ok, first, stderr) = invite(&[]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = invite(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("fred@example.org already has an open invitation"),
        "{stderr}"
    );
    assert!(stderr.contains("--replace"), "{stderr}");
    let (ok, second, stderr) = invite(&["--replace"]);
    assert!(ok, "{stderr}");

    let app = app_on(dir.path()).await;
    assert_form_error(
        app.login_with_code(&last_line(&first)).await,
        "replaced by a newer one",
    )
    .await;
    assert_redirects_to(&app.login_with_code(&last_line(&second)).await, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_add_and_invite_domain_make_a_code_for_that_site_only() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args([
        "site",
        "add",
        "--domain",
        "Club.Test",
        "--name",
        "Tango Club",
    ]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Added site club.test (Tango Club)"),
        "{stdout}"
    );
    let (ok, _, stderr) = run(gatehouse(dir.path()).args([
        "site",
        "add",
        "--domain",
        "club.test",
        "--name",
        "Again",
    ]));
    assert!(!ok);
    assert!(
        stderr.contains("A site with domain 'club.test' already exists"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(gatehouse(dir.path()).args([
        "site",
        "add",
        "--domain",
        "https://x.test:80",
        "--name",
        "X",
    ]));
    assert!(!ok);
    assert!(stderr.contains("--domain must be a host name"), "{stderr}");
    let (ok, stdout, _) = run(gatehouse(dir.path()).args(["site", "list"]));
    assert!(ok);
    assert!(
        stdout.contains("127.0.0.1\tGatehouse (default)")
            && stdout.contains("club.test\tTango Club")
    );

    // With two sites, a script must say which.
    let (ok, _, stderr) =
        run(gatehouse(dir.path()).args(["invite", "--email", "fred@example.org", "--no-send"]));
    assert!(!ok);
    assert!(stderr.contains("Missing parameter --domain"), "{stderr}");
    let (ok, stdout, stderr) = run(gatehouse(dir.path()).args([
        "invite",
        "--email",
        "fred@example.org",
        "--domain",
        "club.test",
        "--no-send",
    ]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("http://club.test:8080/accounts/login?code="),
        "{stdout}"
    );
    let code = last_line(&stdout);

    let app = app_on(dir.path()).await;
    assert_form_error(app.login_with_code(&code).await, "That code is not valid.").await;
    let club = app.new_browser().on_host("club.test");
    assert_redirects_to(&club.login_with_code(&code).await, "/");
    assert!(club.get_html("/").await.contains("Tango Club"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_with_no_send_prints_each_code_beside_its_address() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("few.csv");
    std::fs::write(
        &file,
        "fred@example.org,Fred Astaire,555-0100\n\nGinger@Example.org,\"Rogers, Ginger\"\nnope\n",
    )
    .expect("write");
    let mut command = gatehouse(dir.path());
    command
        .arg("invite")
        .arg("--csv")
        .arg(&file)
        .arg("--no-send");
    let (ok, stdout, stderr) = run_beside(command).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("line 4: skipped: \"nope\": email: Enter a valid e-mail address"),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("fred@example.org,"));
    assert!(lines[1].starts_with("ginger@example.org,"));
    assert_eq!(
        lines[2],
        "Created 2 invitations on 127.0.0.1 (1 row skipped); codes printed above, nothing e-mailed."
    );
    let ginger_code = lines[1].split(',').nth(1).expect("code");
    let app = app_on(dir.path()).await;
    assert_redirects_to(&app.login_with_code(ginger_code).await, "/");
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM users WHERE first_name = 'Rogers,' AND last_name = 'Ginger'"
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'invite.created'")
            .await,
        2
    );
}

/// 1 000 rows with six bad ones: each bad row is reported by its line and
/// skipped, the rest are invited and mailed. Run against both backends.
async fn a_csv_import_of_a_thousand_rows_skips_the_bad_ones_and_mails_the_rest(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let (url, secret) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display()),
            None,
        ),
        Backend::Postgres => {
            let Some(url) = crate::support::postgres::fresh_database_url().await else {
                return;
            };
            (url, Some("test-secret-key-for-postgres-0123456789abcdef"))
        }
    };
    let bad_rows = [
        (11, "not-an-email,Bad Email,".to_owned()),
        (101, "person5@example.org,Same Person Again,".to_owned()),
        (201, format!("long@example.org,{},", "n".repeat(151))),
        (301, "phone@example.org,Bad Phone,call me".to_owned()),
        (401, "a@example.org,b,c,d".to_owned()),
        (501, ",No Address,555-0000".to_owned()),
    ];
    let mut csv = String::from("email,name,phone\n");
    for line in 2..=1001 {
        match bad_rows.iter().find(|(bad, _)| *bad == line) {
            Some((_, row)) => csv.push_str(row),
            None => csv.push_str(&format!(
                "person{line}@example.org,Person {line},555-{line:04}"
            )),
        }
        csv.push('\n');
    }
    let file = dir.path().join("invites.csv");
    std::fs::write(&file, csv).expect("write csv");

    let sink = SmtpSink::start().await;
    let mut command = gatehouse(dir.path());
    command
        .env("GATEHOUSE__DATABASE__URL", &url)
        .env("GATEHOUSE__MAIL__TRANSPORT", "smtp")
        .env("GATEHOUSE__MAIL__SMTP_URL", sink.url())
        .arg("invite")
        .arg("--csv")
        .arg(&file);
    if let Some(secret) = secret {
        command.env("GATEHOUSE__SECRET_KEY", secret);
    }
    let started = Instant::now();
    let (ok, stdout, stderr) = run_beside(command).await;
    eprintln!(
        "{backend:?}: `gatehouse invite --csv` with 1000 rows (994 mailed) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(ok, "{stderr}");
    for (line, _) in &bad_rows {
        assert!(
            stderr.contains(&format!("line {line}: skipped: ")),
            "line {line} is reported:\n{stderr}"
        );
    }
    assert!(stderr.contains("is also on line 5"), "{stderr}");
    assert_eq!(stderr.matches("skipped").count(), 6, "{stderr}");
    assert_eq!(
        last_line(&stdout),
        "Created 994 invitations on 127.0.0.1 (6 rows skipped); 994 e-mailed."
    );
    let messages = sink.wait_for(994).await;
    assert_eq!(messages.len(), 994);

    let url_for_app = url.clone();
    let app = spawn_app_with(backend, move |settings| settings.database.url = url_for_app)
        .await
        .expect("app");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM invites").await, 994);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE sent_at IS NOT NULL AND phone <> ''")
            .await,
        994
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL")
            .await,
        994
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'invite.sent'")
            .await,
        994
    );
    // A mailed code works.
    let mail = messages
        .iter()
        .find(|mail| mail.to == ["person999@example.org"])
        .expect("mailed");
    assert_redirects_to(
        &app.login_with_code(&code_in_mail(&mail.parsed().text))
            .await,
        "/",
    );
    assert_eq!(app.whoami().await.as_deref(), Some("person999@example.org"));
}

backend_tests!(a_csv_import_of_a_thousand_rows_skips_the_bad_ones_and_mails_the_rest);

/// `--no-input` (or Django's `--noinput`): on a terminal, where the command
/// would ask, it fails at once naming what is missing, and asks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_fails_with_a_clear_message_instead_of_asking() {
    let dir = tempfile::tempdir().expect("dir");
    let sink = SmtpSink::start().await;
    for args in ["--no-input invite", "invite --noinput --no-send"] {
        let Some((ok, output)) =
            on_a_terminal(dir.path(), &sink, args, b"fred@example.org\n").await
        else {
            return;
        };
        assert!(!ok, "{output}");
        assert!(
            output.contains("Missing parameter --email (--no-input was given)"),
            "{output}"
        );
        assert!(!output.contains("E-mail address of the person"), "{output}");
    }
    // Given everything, it runs without asking (and, unasked, does not send).
    let args = "invite --no-input --email fred@example.org";
    let Some((ok, output)) = on_a_terminal(dir.path(), &sink, args, b"").await else {
        return;
    };
    assert!(ok, "{output}");
    assert!(!output.contains("[y/N]"), "{output}");
    assert!(
        gatehouse::invites::InviteCode::parse(&last_line(&output)).is_ok(),
        "{output}"
    );
    // A second site: the site is asked for on a terminal, but not with --no-input.
    let (ok, _, stderr) = run(gatehouse(dir.path()).args([
        "site",
        "add",
        "--domain",
        "two.example.org",
        "--name",
        "Two",
    ]));
    assert!(ok, "{stderr}");
    let args = "invite --no-input --email ginger@example.org --no-send";
    let Some((ok, output)) = on_a_terminal(dir.path(), &sink, args, b"1\n").await else {
        return;
    };
    assert!(!ok, "{output}");
    assert!(
        output.contains("Missing parameter --domain") && output.contains("--no-input was given"),
        "{output}"
    );
    assert!(!output.contains("Select a site"), "{output}");
}

/// A link that does not set its session length gets
/// `visitors.session_expiry_secs`; one that does keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_links_without_a_session_expiry_get_the_configured_default() {
    let dir = tempfile::tempdir().expect("dir");
    for (email, extra) in [("a@example.org", None), ("b@example.org", Some("60"))] {
        let mut command = gatehouse(dir.path());
        command
            .env("GATEHOUSE__VISITORS__SESSION_EXPIRY_SECS", "900")
            .args([
                "visitor",
                "create",
                "--scope",
                "REFERENCE_REQUEST",
                "--email",
                email,
            ]);
        if let Some(seconds) = extra {
            command.args(["--session-expiry", seconds]);
        }
        let (ok, _, stderr) = run(&mut command);
        assert!(ok, "{stderr}");
    }
    let app = app_on(dir.path()).await;
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM visitors WHERE scope = 'REFERENCE_REQUEST' AND \
             ((email = 'a@example.org' AND session_expiry_secs = 900) OR \
              (email = 'b@example.org' AND session_expiry_secs = 60))"
        )
        .await,
        2
    );
    let (ok, _, stderr) = run(gatehouse(dir.path())
        .env("GATEHOUSE__VISITORS__SESSION_EXPIRY_MODE", "sometimes")
        .args([
            "visitor",
            "create",
            "--scope",
            "demo",
            "--email",
            "c@example.org",
        ]));
    assert!(!ok);
    assert!(stderr.contains("session_expiry_mode"), "{stderr}");
}
