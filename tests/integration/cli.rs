//! The `gatehouse` binary as operators and scripts use it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp, assert_redirects_to, spawn_app_with};

fn gatehouse(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
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
fn run_with_stdin(command: &mut Command, input: &[u8]) -> (bool, String, String) {
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

/// The app, in-process, on the database the CLI wrote (same secret file).
async fn app_on(dir: &std::path::Path) -> TestApp {
    let url = format!("sqlite://{}?mode=rwc", dir.join("cli.db").display());
    spawn_app_with(Backend::Sqlite, |settings| settings.database.url = url)
        .await
        .expect("sqlite app")
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
