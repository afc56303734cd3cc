//! A member's own account and data: profile, e-mail change by link,
//! sessions (log out one, log out everywhere else), the JSON export and
//! deleting the account (nothing personal left in any table).

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};

use crate::backend_tests;
use crate::helpers::{
    Backend, Browser, TestApp, assert_form_error, assert_redirects_to, location, spawn_app,
    unescape,
};
use crate::members::browser_cookies;
use crate::support::burst::{self, RawRequest};

const PASSWORD: &str = "tap dancing shoes";

/// Fred, with a password, logged in in the app's browser.
async fn fred(app: &TestApp) -> i64 {
    let id = app
        .create_user("fred", "fred@example.org", PASSWORD, false)
        .await;
    assert_redirects_to(&app.login_with_password("fred", PASSWORD).await, "/");
    id
}

/// The value of the first `name="NAME" value="…"` on a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    unescape(&html[start..end])
}

/// The path of the link in a mail (`…/accounts/profile/email/TOKEN`).
fn link_in(text: &str) -> String {
    let start = text.find("/accounts/profile/email/").expect("a link");
    text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

async fn the_profile_keeps_the_username_rules_and_the_form_as_typed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    app.create_user("ginger", "ginger@example.org", PASSWORD, false)
        .await;
    let html = app.get_html("/accounts/profile").await;
    assert!(html.contains("fred@example.org"));
    let form = |username: &'static str, phone: &'static str| {
        vec![
            ("username", username),
            ("first_name", "Fred"),
            ("last_name", "Astaire <b>"),
            ("phone", phone),
        ]
    };
    let html = assert_form_error(
        app.post_form("/accounts/profile", &form("fred astaire", "555"))
            .await,
        "Use only letters, digits and @ . + - _ in a username.",
    )
    .await;
    assert!(
        html.contains("value=\"Astaire &lt;b&gt;\""),
        "typed values back: {html}"
    );
    assert_form_error(
        app.post_form("/accounts/profile", &form("GINGER", "555"))
            .await,
        "That username is already taken on this site.",
    )
    .await;
    assert_form_error(
        app.post_form("/accounts/profile", &form("fred", "call me"))
            .await,
        "Use only digits",
    )
    .await;
    let response = app
        .post_form("/accounts/profile", &form("fred_a", "+1 (555) 0100"))
        .await;
    assert_redirects_to(&response, "/accounts/profile");
    let html = app.get_html("/accounts/profile").await;
    assert!(html.contains("Your profile was saved."));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM users WHERE username = 'fred_a' AND phone = '+1 (555) 0100' \
             AND last_name = 'Astaire <b>'"
        )
        .await,
        1
    );
    assert_redirects_to(
        &app.new_browser()
            .login_with_password("fred_a", PASSWORD)
            .await,
        "/",
    );
}

async fn an_email_change_needs_the_link_sent_to_the_new_address(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let id = fred(&app).await;
    app.create_user("ginger", "ginger@example.org", PASSWORD, false)
        .await;
    assert_form_error(
        app.post_form(
            "/accounts/profile/email",
            &[("new_email", "Ginger@Example.org")],
        )
        .await,
        "Another account on this site already uses that e-mail address.",
    )
    .await;
    let html = assert_form_error(
        app.post_form(
            "/accounts/profile/email",
            &[("new_email", "not an address")],
        )
        .await,
        "new_email-error",
    )
    .await;
    assert!(html.contains("value=\"not an address\""));
    let response = app
        .post_form(
            "/accounts/profile/email",
            &[("new_email", "Fred@New.Example")],
        )
        .await;
    assert_redirects_to(&response, "/accounts/profile");
    let mail = app.smtp.wait_for(1).await[0].parsed();
    assert_eq!(mail.to, "fred@new.example");
    let link = link_in(&mail.text);
    // Nothing has changed yet, and opening the link (a GET) changes nothing.
    let confirm_page = app.get_html(&link).await;
    assert!(confirm_page.contains("fred@new.example"), "{confirm_page}");
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {id} AND email = 'fred@example.org'"
        ))
        .await,
        1
    );
    let token = field(&confirm_page, "token");
    // Confirmed from another browser: the link alone is enough.
    let other = app.new_browser();
    let response = other
        .post_form("/accounts/profile/email/confirm", &[("token", &token)])
        .await;
    assert_redirects_to(&response, "/");
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {id} AND email = 'fred@new.example'"
        ))
        .await,
        1
    );
    let messages = app.smtp.wait_for(2).await;
    let notice = messages[1].parsed();
    assert_eq!(notice.to, "fred@example.org");
    assert!(
        notice.text.contains("was changed to fred@new.example"),
        "{}",
        notice.text
    );
    // Used: refused, the page says why, and nothing changes.
    let response = other
        .post_form("/accounts/profile/email/confirm", &[("token", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("was used already")
    );
    assert_eq!(app.get(&link).await.status(), StatusCode::GONE);
    assert_eq!(
        app.get("/accounts/profile/email/not-a-token")
            .await
            .status(),
        StatusCode::GONE
    );
    // An old link is refused too.
    app.post_form(
        "/accounts/profile/email",
        &[("new_email", "fred@third.example")],
    )
    .await;
    let third = link_in(&app.smtp.wait_for(3).await[2].parsed().text);
    app.execute(&format!(
        "UPDATE email_changes SET expires_at = {} WHERE new_email = 'fred@third.example'",
        app.days_ago(1)
    ))
    .await;
    assert_eq!(app.get(&third).await.status(), StatusCode::GONE);
    assert_redirects_to(
        &app.new_browser()
            .login_with_password("fred@new.example", PASSWORD)
            .await,
        "/",
    );
}

async fn an_email_change_link_used_twice_at_once_changes_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    app.post_form(
        "/accounts/profile/email",
        &[("new_email", "fred@new.example")],
    )
    .await;
    let link = link_in(&app.smtp.wait_for(1).await[0].parsed().text);
    let token = link.rsplit('/').next().expect("token").to_owned();
    let browser = app.new_browser();
    let (cookies, csrf) = browser_cookies(&browser).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let requests = (0..4)
        .map(|_| {
            RawRequest::form(
                &address,
                "/accounts/profile/email/confirm",
                &cookies,
                &[("token", token.as_str()), ("csrf_token", csrf.as_str())],
            )
        })
        .collect();
    let responses = burst::at_once(&address, requests).await;
    let statuses: Vec<u16> = responses.iter().map(|response| response.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 410).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'user.email_changed'")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'fred@example.org'")
            .await,
        1,
        "one notice to the old address"
    );
}

async fn logging_out_another_session_takes_effect_on_its_next_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    let phone = app.new_browser();
    assert_redirects_to(
        &phone
            .login_with_password("fred@example.org", PASSWORD)
            .await,
        "/",
    );
    let laptop = app.new_browser();
    assert_redirects_to(&laptop.login_with_password("fred", PASSWORD).await, "/");
    assert!(
        phone
            .get_html("/accounts/profile")
            .await
            .contains("fred@example.org")
    );
    let html = app.get_html("/accounts/sessions").await;
    assert_eq!(html.matches("name=\"session\"").count(), 2, "{html}");
    assert!(html.contains("id=\"this-session\""));
    // The phone's own page says which row it is; end that one from here.
    let phone_html = phone.get_html("/accounts/sessions").await;
    assert!(phone_html.contains("id=\"this-session\""));
    let others: Vec<String> = html
        .match_indices("name=\"session\" value=\"")
        .map(|(at, marker)| {
            html[at + marker.len()..]
                .split('"')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(others.len(), 2);
    // Which one is the phone: the one not listed on the phone's own page as a button.
    let phone_id = others
        .iter()
        .find(|id| !phone_html.contains(id.as_str()))
        .expect("the phone's session")
        .clone();
    let response = app
        .post_form("/accounts/sessions/end", &[("session", &phone_id)])
        .await;
    assert_redirects_to(&response, "/accounts/sessions");
    assert!(
        app.get_html("/accounts/sessions")
            .await
            .contains("That session was logged out.")
    );
    let response = phone.get("/accounts/profile").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with("/accounts/login"));
    assert!(
        laptop
            .get_html("/accounts/profile")
            .await
            .contains("fred@example.org")
    );
    // Another member cannot end Fred's sessions.
    app.create_user("ginger", "ginger@example.org", PASSWORD, false)
        .await;
    let ginger = app.new_browser();
    assert_redirects_to(&ginger.login_with_password("ginger", PASSWORD).await, "/");
    let laptop_id = others.iter().find(|id| **id != phone_id).expect("laptop");
    ginger
        .post_form("/accounts/sessions/end", &[("session", laptop_id)])
        .await;
    assert!(
        ginger
            .get_html("/accounts/sessions")
            .await
            .contains("That session had already ended.")
    );
    assert_eq!(laptop.whoami().await.as_deref(), Some("fred"));
    // Log out everywhere else.
    let response = app.post_form("/accounts/sessions/end-others", &[]).await;
    assert_redirects_to(&response, "/accounts/sessions");
    assert!(
        app.get_html("/accounts/sessions")
            .await
            .contains("1 other session was logged out.")
    );
    assert_eq!(laptop.whoami().await, None);
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
    assert_eq!(ginger.whoami().await.as_deref(), Some("ginger"));
}

/// Every row of every table as text (what a query over the tables shows).
async fn every_row(app: &TestApp) -> String {
    let db = app.db();
    let backend = db.get_database_backend();
    let tables_sql = match app.backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        Backend::Postgres => "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    };
    let tables = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await
        .expect("tables");
    let mut text = String::new();
    for table in tables {
        let table: String = table.try_get_by_index(0).expect("name");
        let sql = match app.backend {
            Backend::Postgres => format!("SELECT t::text FROM \"{table}\" t"),
            Backend::Sqlite => {
                let columns = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await
                    .expect("columns");
                let quoted: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        let name: String = column.try_get_by_index(0).expect("column");
                        format!("quote(\"{name}\")")
                    })
                    .collect();
                format!("SELECT {} FROM \"{table}\"", quoted.join(" || '|' || "))
            }
        };
        for row in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect("rows")
        {
            text.push_str(&table);
            text.push_str(": ");
            text.push_str(&row.try_get_by_index::<String>(0).expect("text"));
            text.push('\n');
        }
    }
    text
}

/// Fred through an invitation (name, phone), with a password, a reference
/// asked, a pending e-mail change, staff rights given and taken, and a
/// session in a second browser.
async fn a_full_member(app: &TestApp) -> (i64, Browser) {
    let code = app.invite("fred@example.org", "Fred Astaire").await;
    let fred = app.browser();
    assert_redirects_to(&fred.login_with_code(&code).await, "/");
    let response = fred
        .post_form(
            "/accounts/password",
            &[("new_password", PASSWORD), ("confirm_password", PASSWORD)],
        )
        .await;
    assert!(response.status().is_redirection());
    assert_redirects_to(
        &fred.login_with_password("fred@example.org", PASSWORD).await,
        "/",
    );
    let response = fred
        .post_form(
            "/references/request",
            &[
                ("name", "Ginger Rogers"),
                ("email", "ginger@example.org"),
                ("message", "Vouch for my footwork"),
            ],
        )
        .await;
    assert!(response.status().is_redirection());
    fred.post_form(
        "/accounts/profile/email",
        &[("new_email", "fred@new.example")],
    )
    .await;
    let id = app
        .scalar("SELECT id FROM users WHERE email = 'fred@example.org'")
        .await;
    let boss = app.new_browser();
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    assert_redirects_to(
        &boss
            .login_with_password("boss", "a long staff password")
            .await,
        "/",
    );
    for choice in ["yes", "no"] {
        boss.post_form(
            &format!("/staff/members/{id}/staff"),
            &[("staff", choice), ("confirm", "yes")],
        )
        .await;
    }
    let phone = app.new_browser();
    assert_redirects_to(
        &phone
            .login_with_password("fred@example.org", PASSWORD)
            .await,
        "/",
    );
    (id, phone)
}

async fn the_export_holds_what_is_listed_and_nothing_of_other_members(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, _) = a_full_member(&app).await;
    app.create_user("zelda", "zelda@example.org", PASSWORD, false)
        .await;
    let page = app.get_html("/accounts/export").await;
    assert!(page.contains("Download my data"));
    let response = app.post_form("/accounts/export", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains(&format!("gatehouse-account-{id}.json"))
    );
    let export: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(export["account"]["email"], "fred@example.org");
    assert_eq!(export["account"]["first_name"], "Fred");
    assert_eq!(export["account"]["phone"], "555-0100");
    assert_eq!(export["account"]["has_password"], true);
    assert!(export["account"].get("password_hash").is_none());
    assert_eq!(export["invitation"]["email"], "fred@example.org");
    assert_eq!(export["invitations_sent"], serde_json::json!([]));
    assert_eq!(
        export["reference_requests"][0]["referee_email"],
        "ginger@example.org"
    );
    assert_eq!(
        export["reference_requests"][0]["message"],
        "Vouch for my footwork"
    );
    let sessions = export["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions
            .iter()
            .filter(|s| s["this_session"] == true)
            .count(),
        1
    );
    let audit = export["audit_log"].as_array().expect("audit");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|row| row["by"] == "a staff member"));
    let text = export.to_string();
    for other in ["zelda", "boss"] {
        assert!(!text.contains(other), "{other} in {text}");
    }
    // Members only.
    let anonymous = app.new_browser();
    let response = anonymous.post_form("/accounts/export", &[]).await;
    assert_eq!(response.status(), StatusCode::FOUND);
}

async fn deleting_an_account_leaves_no_personal_field_behind(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, phone) = a_full_member(&app).await;
    // The referee follows her link, so there are visit logs too.
    let mail = app
        .smtp
        .wait_for(2)
        .await
        .into_iter()
        .map(|message| message.parsed())
        .find(|mail| mail.to == "ginger@example.org")
        .expect("the referee's mail");
    let start = mail.text.find("/references/respond").expect("link");
    let link: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let ginger = app.new_browser();
    ginger.follow_link(&link).await;
    ginger.get("/references/respond").await;
    app.flush_logs().await;
    assert!(app.scalar("SELECT COUNT(*) FROM visitor_logs").await > 0);
    // A wrong password or no confirmation: refused, nothing deleted.
    let html = assert_form_error(
        app.post_form(
            "/accounts/delete",
            &[("password", "wrong"), ("confirm", "yes")],
        )
        .await,
        "That is not your password.",
    )
    .await;
    assert!(!html.contains("value=\"wrong\""));
    assert_form_error(
        app.post_form("/accounts/delete", &[("password", PASSWORD)])
            .await,
        "Tick the box",
    )
    .await;
    // Nothing filled in: both mistakes at once, in the summary at the top.
    let html =
        assert_form_error(app.post_form("/accounts/delete", &[]).await, "Tick the box").await;
    assert!(html.contains("There are 2 problems") && html.contains("Enter your password."));
    assert!(html.contains("<title>Error: Delete your account"));
    let response = app
        .post_form(
            "/accounts/delete",
            &[("password", PASSWORD), ("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/accounts/deleted");
    assert!(
        app.get_html("/accounts/deleted")
            .await
            .contains("has been deleted")
    );
    assert_eq!(phone.whoami().await, None, "every session ended");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL")
            .await,
        1,
        "boss only"
    );
    let rows = every_row(&app).await;
    for personal in [
        "fred@example.org",
        "fred@new.example",
        "Fred",
        "Astaire",
        "555-0100",
        "ginger@example.org",
        "Ginger",
        "Rogers",
        "footwork",
    ] {
        let found: Vec<&str> = rows
            .lines()
            .filter(|line| line.contains(personal))
            .collect();
        assert!(found.is_empty(), "{personal} is still in: {found:#?}");
    }
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.deleted' AND subject = 'member #{id}' AND actor_id = {id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {id} AND username = 'deleted-{id}' \
             AND password_hash IS NULL AND NOT is_active AND deleted_at IS NOT NULL"
        ))
        .await,
        1
    );
    // Gone for good: no login, no code, not on the staff pages.
    assert_form_error(
        app.new_browser()
            .login_with_password("fred@example.org", PASSWORD)
            .await,
        "do not match",
    )
    .await;
    let boss = app.new_browser();
    assert_redirects_to(
        &boss
            .login_with_password("boss", "a long staff password")
            .await,
        "/",
    );
    assert_eq!(
        boss.get(&format!("/staff/members/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!boss.get_html("/staff/members").await.contains("deleted-"));
}

async fn the_last_staff_member_cannot_delete_their_account(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.staff_login().await;
    assert_form_error(
        app.post_form(
            "/accounts/delete",
            &[("password", "a long staff password"), ("confirm", "yes")],
        )
        .await,
        "boss is the only active staff member",
    )
    .await;
    assert_eq!(app.whoami().await.as_deref(), Some("boss"));
}

async fn a_code_only_member_deletes_their_account_with_their_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("fred@example.org", "Fred Astaire").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    let html = app.get_html("/accounts/delete").await;
    assert!(html.contains("Your invitation code"), "{html}");
    let other = app.invite("ginger@example.org", "Ginger Rogers").await;
    assert_form_error(
        app.post_form("/accounts/delete", &[("code", &other), ("confirm", "yes")])
            .await,
        "not a working invitation code of yours",
    )
    .await;
    let response = app
        .post_form(
            "/accounts/delete",
            &[("code", &code.to_lowercase()), ("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/accounts/deleted");
    // The code made the account; it must not make it again.
    assert_form_error(app.login_with_code(&code).await, "no longer").await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE deleted_at IS NULL")
            .await,
        0
    );
}

async fn a_deletion_sent_twice_at_once_deletes_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let id = fred(&app).await;
    let forms = vec![vec![("password", PASSWORD), ("confirm", "yes")]; 3];
    let responses = crate::security::post_at_once(&app, "/accounts/delete", &forms).await;
    for response in &responses {
        assert!(
            [302, 303].contains(&response.status),
            "{}: {}",
            response.status,
            response.text
        );
    }
    assert!(responses.iter().any(|response| response.status == 303));
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.deleted' AND actor_id = {id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE deleted_at IS NOT NULL")
            .await,
        1
    );
}

backend_tests!(
    a_deletion_sent_twice_at_once_deletes_once,
    the_profile_keeps_the_username_rules_and_the_form_as_typed,
    an_email_change_needs_the_link_sent_to_the_new_address,
    an_email_change_link_used_twice_at_once_changes_once,
    logging_out_another_session_takes_effect_on_its_next_request,
    the_export_holds_what_is_listed_and_nothing_of_other_members,
    deleting_an_account_leaves_no_personal_field_behind,
    the_last_staff_member_cannot_delete_their_account,
    a_code_only_member_deletes_their_account_with_their_code,
);
