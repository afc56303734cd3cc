//! Staff managing members: `/staff/members` (search, filters, pages), a
//! member's page, deactivate/reactivate, make/remove staff (never the last
//! one), the audit rows; and `gatehouse user list|deactivate|reactivate|set-staff`.

use gatehouse::accounts::users::{NewUser, create};
use gatehouse::email_address::EmailAddress;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;

use crate::backend_tests;
use crate::helpers::{
    Backend, Browser, TestApp, assert_form_error, assert_redirects_to, spawn_app, unescape,
};
use crate::support::burst::{self, RawRequest};

/// A member without a password (they log in with invitation codes).
async fn code_only_member(app: &TestApp, username: &str, email: &str) -> i64 {
    let site = app.state.sites.for_host("127.0.0.1").await;
    create(
        app.db(),
        NewUser {
            site_id: site.id,
            username: username.into(),
            email: EmailAddress::parse(email).expect("e-mail"),
            first_name: "Ginger".into(),
            last_name: "Rogers".into(),
            password_hash: None,
            is_staff: false,
        },
    )
    .await
    .expect("created")
    .id
}

/// A browser's `Cookie` header and CSRF token, for raw requests.
pub async fn browser_cookies(browser: &Browser) -> (String, String) {
    let token = browser.csrf_token().await;
    let url = browser.address.parse().expect("url");
    let cookies = browser
        .jar
        .cookies(&url)
        .map(|header| header.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    (cookies, token)
}

async fn staff_search_filters_and_pages_through_members(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.staff_login().await;
    for n in 0..27 {
        app.create_user(
            &format!("member{n:02}"),
            &format!("member{n:02}@example.org"),
            "a long member password",
            false,
        )
        .await;
    }
    code_only_member(&app, "ginger", "ginger@example.org").await;
    let html = app.get_html("/staff/members").await;
    assert_eq!(html.matches("<tr id=\"member-").count(), 25, "{html}");
    assert!(html.contains("Page 1 of 2"), "{html}");
    let second = app.get_html("/staff/members?page=2").await;
    assert_eq!(second.matches("<tr id=\"member-").count(), 4);
    let found = app.get_html("/staff/members?q=GINGER").await;
    assert_eq!(found.matches("<tr id=\"member-").count(), 1);
    assert!(found.contains("ginger@example.org") && found.contains("code only"));
    // The search is a search, not a pattern: `_` and `%` are plain characters.
    let none = app.get_html("/staff/members?q=member_").await;
    assert!(none.contains("No members match"), "{none}");
    let staff = app.get_html("/staff/members?role=staff").await;
    assert_eq!(staff.matches("<tr id=\"member-").count(), 1);
    assert!(staff.contains("boss@example.org"));
    let code_only = app.get_html("/staff/members?login=code").await;
    assert_eq!(code_only.matches("<tr id=\"member-").count(), 1);
    let with_password = app
        .get_html("/staff/members?login=password&role=members&q=member1")
        .await;
    assert_eq!(with_password.matches("<tr id=\"member-").count(), 10);
    // Unknown filter values are ignored, not an error.
    let response = app.get("/staff/members?role=king&status=x&page=-3").await;
    assert_eq!(response.status(), StatusCode::OK);
    let inactive = app.get_html("/staff/members?status=inactive").await;
    assert!(inactive.contains("No members match"));
}

async fn a_members_page_shows_their_invitation_sessions_and_references(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("fred@example.org", "Fred Astaire").await;
    let fred = app.new_browser();
    assert_redirects_to(&fred.login_with_code(&code).await, "/");
    let response = fred
        .post_form(
            "/references/request",
            &[
                ("name", "Ginger Rogers"),
                ("email", "ginger@example.org"),
                ("message", "Please vouch for me."),
            ],
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    app.staff_login().await;
    let fred_id = app
        .scalar("SELECT id FROM users WHERE email = 'fred@example.org'")
        .await;
    let html = app.get_html(&format!("/staff/members/{fred_id}")).await;
    assert!(html.contains("Fred Astaire"), "{html}");
    assert!(html.contains("555-0100"), "{html}");
    assert!(html.contains("invitation codes only"));
    assert!(html.contains("first used"), "the invitation: {html}");
    assert_eq!(
        html.matches("<tr><td data-label=").count(),
        2,
        "one session and one reference: {html}"
    );
    assert!(
        unescape(&html).contains("127.0.0.0/24"),
        "the approximate address: {html}"
    );
    assert!(html.contains("Ginger Rogers") && html.contains("requested"));
    assert_eq!(
        app.get("/staff/members/999999").await.status(),
        StatusCode::NOT_FOUND
    );
    // Members have no business here.
    assert_eq!(
        fred.get(&format!("/staff/members/{fred_id}"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

async fn deactivating_ends_every_session_and_login_is_refused_with_a_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fred_id = app
        .create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let fred = app.new_browser();
    assert_redirects_to(
        &fred.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    app.staff_login().await;
    // Staff are asked first, with the member named and the effect spelt out.
    let response = app
        .post_form(&format!("/staff/members/{fred_id}/deactivate"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let question = response.text().await.expect("body");
    assert!(question.contains("<h1>Deactivate fred?</h1>"), "{question}");
    assert!(question.contains("logged out at once on every device"));
    assert!(
        fred.whoami().await.is_some(),
        "nothing happens before the answer"
    );
    let response = app
        .post_form(
            &format!("/staff/members/{fred_id}/deactivate"),
            &[("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, &format!("/staff/members/{fred_id}"));
    let page = app.get_html(&format!("/staff/members/{fred_id}")).await;
    assert!(page.contains("This member was deactivated"), "{page}");
    assert!(page.contains("Not logged in anywhere"), "{page}");
    // Fred's next request is anonymous.
    let response = fred.get("/accounts/password").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(fred.whoami().await, None);
    // Fred opens the login page (with its form's new token) and tries again.
    fred.get("/accounts/login").await;
    assert_form_error(
        fred.login_with_password("fred", "tap dancing shoes").await,
        "Your account has been deactivated. Contact the staff of this site.",
    )
    .await;
    let audit = app.get_html("/staff/audit").await;
    assert!(audit.contains("Account deactivated"), "{audit}");
    // Staff cannot lock themselves out.
    let boss_id = app
        .scalar("SELECT id FROM users WHERE username = 'boss'")
        .await;
    app.post_form(&format!("/staff/members/{boss_id}/deactivate"), &[])
        .await;
    let page = app.get_html(&format!("/staff/members/{boss_id}")).await;
    assert!(
        page.contains("You cannot deactivate your own account"),
        "{page}"
    );
    app.post_form(&format!("/staff/members/{fred_id}/reactivate"), &[])
        .await;
    assert_redirects_to(
        &fred.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    let audit = app.get_html("/staff/audit").await;
    assert!(audit.contains("Account reactivated"), "{audit}");
}

async fn the_last_staff_member_cannot_remove_themselves(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let boss_id = app.staff_login().await;
    let fred_id = app
        .create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let staff_path = format!("/staff/members/{boss_id}/staff");
    // First a question, and nothing changes.
    let question = app.post_form(&staff_path, &[("staff", "no")]).await;
    assert_eq!(question.status(), StatusCode::OK);
    let question = question.text().await.expect("body");
    assert!(
        question.contains("Remove your own staff role?"),
        "{question}"
    );
    assert!(
        question.contains(r#"name="staff" value="no""#),
        "{question}"
    );
    let response = app
        .post_form(&staff_path, &[("staff", "no"), ("confirm", "yes")])
        .await;
    assert_redirects_to(&response, &format!("/staff/members/{boss_id}"));
    let page = app.get_html(&format!("/staff/members/{boss_id}")).await;
    assert!(
        page.contains("boss is the only active staff member"),
        "{page}"
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_staff")
            .await,
        1
    );
    // Nonsense in the form is a plain 400, not a change.
    let response = app.post_form(&staff_path, &[("staff", "maybe")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let question = app
        .post_form(
            &format!("/staff/members/{fred_id}/staff"),
            &[("staff", "yes")],
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(question.contains("Make fred staff?"), "{question}");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_staff")
            .await,
        1
    );
    app.post_form(
        &format!("/staff/members/{fred_id}/staff"),
        &[("staff", "yes"), ("confirm", "yes")],
    )
    .await;
    app.post_form(&staff_path, &[("staff", "no"), ("confirm", "yes")])
        .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_staff AND username = 'fred'")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_staff")
            .await,
        1
    );
    // No longer staff: the staff pages are closed to the former boss.
    assert_eq!(
        app.get("/staff/members").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action IN ('user.made_staff', 'user.staff_removed')")
            .await,
        2
    );
}

async fn two_staff_members_removing_each_other_at_once_leave_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = app
        .create_user(
            "astaire",
            "astaire@example.org",
            "a long staff password",
            true,
        )
        .await;
    let b = app
        .create_user(
            "rogers",
            "rogers@example.org",
            "a long staff password",
            true,
        )
        .await;
    let (first, second) = (app.new_browser(), app.new_browser());
    assert_redirects_to(
        &first
            .login_with_password("astaire", "a long staff password")
            .await,
        "/",
    );
    assert_redirects_to(
        &second
            .login_with_password("rogers", "a long staff password")
            .await,
        "/",
    );
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut requests = Vec::new();
    for (browser, target) in [(&first, b), (&second, a)] {
        let (cookies, token) = browser_cookies(browser).await;
        let path = format!("/staff/members/{target}/staff");
        requests.push(RawRequest::form(
            &address,
            &path,
            &cookies,
            &[("staff", "no"), ("confirm", "yes"), ("csrf_token", &token)],
        ));
    }
    let responses = burst::at_once(&address, requests).await;
    for response in &responses {
        assert!(
            response.status == 303 || response.status == 403,
            "{}",
            response.text
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_staff AND is_active")
            .await,
        1,
        "one staff member remains"
    );
}

backend_tests!(
    staff_search_filters_and_pages_through_members,
    a_members_page_shows_their_invitation_sessions_and_references,
    deactivating_ends_every_session_and_login_is_refused_with_a_message,
    the_last_staff_member_cannot_remove_themselves,
    two_staff_members_removing_each_other_at_once_leave_one,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_commands_list_deactivate_reactivate_and_set_staff() {
    use crate::cli::{gatehouse, run_beside};
    let dir = tempfile::tempdir().expect("dir");
    let mut create = gatehouse(dir.path());
    create.args([
        "user",
        "create",
        "--username",
        "boss",
        "--email",
        "boss@example.org",
        "--staff",
    ]);
    assert!(run_beside(create).await.0);
    let mut create = gatehouse(dir.path());
    create.args([
        "user",
        "create",
        "--username",
        "fred",
        "--email",
        "fred@example.org",
    ]);
    assert!(run_beside(create).await.0);
    let command = |args: &[&str]| {
        let mut command = gatehouse(dir.path());
        command.arg("user").args(args);
        command
    };
    let (ok, stdout, stderr) = run_beside(command(&["list"])).await;
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "id\tusername\temail\trole\tstatus\tlogin\tlast_login"
    );
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        stdout.contains("\tfred\tfred@example.org\tmember\tactive\tcode\tnever"),
        "{stdout}"
    );
    let (ok, stdout, _) = run_beside(command(&["list", "--staff"])).await;
    assert!(
        ok && stdout.lines().count() == 2 && stdout.contains("\tboss\t"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run_beside(command(&["deactivate", "fred@example.org"])).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("fred was deactivated"), "{stdout}");
    let (_, stdout, _) = run_beside(command(&["list", "--inactive"])).await;
    assert!(
        stdout.contains("\tfred\t") && stdout.lines().count() == 2,
        "{stdout}"
    );
    let (ok, stdout, _) = run_beside(command(&["reactivate", "fred"])).await;
    assert!(ok && stdout.contains("fred was reactivated"), "{stdout}");
    let (ok, stdout, _) = run_beside(command(&["set-staff", "fred"])).await;
    assert!(
        ok && stdout.contains("fred is now a staff member"),
        "{stdout}"
    );
    let (ok, _, _) = run_beside(command(&["set-staff", "boss", "--off"])).await;
    assert!(ok);
    let (ok, _, stderr) = run_beside(command(&["set-staff", "fred", "--off"])).await;
    assert!(!ok, "the last staff member keeps their rights");
    assert!(
        stderr.contains("fred is the only active staff member"),
        "{stderr}"
    );
    let (ok, _, stderr) = run_beside(command(&["deactivate", "nobody"])).await;
    assert!(!ok && stderr.contains("no member 'nobody'"), "{stderr}");
    let (ok, _, stderr) = run_beside(command(&["deactivate", "fred"])).await;
    assert!(
        !ok && stderr.contains("only active staff member"),
        "{stderr}"
    );
    let app = crate::cli::app_on(dir.path()).await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE actor = 'command line'")
            .await,
        // boss created as staff, deactivate, reactivate, set-staff, --off
        5
    );
}

/// Eight `gatehouse user create` at once on one SQLite file all succeed:
/// each waits its turn for the write lock instead of failing with
/// "database is locked" (a transaction that read first, then wrote).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_at_the_same_time_wait_their_turn() {
    use crate::cli::{gatehouse, run_beside};
    let dir = tempfile::tempdir().expect("dir");
    let create = |n: usize| {
        let mut command = gatehouse(dir.path());
        let (username, email) = (format!("fred{n}"), format!("fred{n}@example.org"));
        command.args(["user", "create", "--username", &username, "--email", &email]);
        command
    };
    // The first creates and migrates the database.
    let (ok, _, stderr) = run_beside(create(0)).await;
    assert!(ok, "{stderr}");
    for round in 0..2 {
        let runs: Vec<_> = (1..=8)
            .map(|n| tokio::spawn(run_beside(create(round * 8 + n))))
            .collect();
        for run in runs {
            let (ok, _, stderr) = run.await.expect("ran");
            assert!(ok, "round {round}: {stderr}");
        }
    }
    let mut list = gatehouse(dir.path());
    list.args(["user", "list"]);
    let (ok, stdout, _) = run_beside(list).await;
    assert!(ok && stdout.lines().count() == 1 + 17, "{stdout}");
}
