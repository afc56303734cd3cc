//! Password logins, setting a password, logout, CSRF, `next=` and sessions.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, assert_form_error, assert_redirects_to, client_with, location, spawn_app,
};

async fn a_member_logs_in_with_username_or_email_and_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("Fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    assert_eq!(app.whoami().await.as_deref(), Some("Fred"));
    app.post_form("/accounts/logout", &[]).await;
    assert_redirects_to(
        &app.login_with_password("FRED@example.org", "tap dancing shoes")
            .await,
        "/",
    );
    assert_eq!(app.whoami().await.as_deref(), Some("Fred"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE last_login_at IS NOT NULL")
            .await,
        1
    );
}

/// A name that is one member's username and another's e-mail names the
/// first: for logging in, and for the counter a failure goes on.
async fn a_username_match_wins_over_another_members_email(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ann = app
        .create_user(
            "pat@example.org",
            "ann@example.org",
            "ann's long password",
            false,
        )
        .await;
    let bob = app
        .create_user("bob", "pat@example.org", "bob's long password", false)
        .await;
    assert_form_error(
        app.login_with_password("PAT@example.org", "bob's long password")
            .await,
        "do not match",
    )
    .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM login_attempts WHERE account = '#{ann}' AND outcome = 'failed'"
        ))
        .await,
        1
    );
    assert_redirects_to(
        &app.login_with_password("PAT@example.org", "ann's long password")
            .await,
        "/",
    );
    let logged_in = |id: i64| {
        format!("SELECT COUNT(*) FROM users WHERE id = {id} AND last_login_at IS NOT NULL")
    };
    assert_eq!(app.scalar(&logged_in(ann)).await, 1);
    assert_eq!(app.scalar(&logged_in(bob)).await, 0);
}

async fn a_wrong_password_and_an_unknown_account_get_the_same_answer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let wrong = app.login_with_password("fred", "wrong password!").await;
    let wrong_status = wrong.status();
    let wrong_html = wrong.text().await.expect("body");
    let unknown = app.login_with_password("nobody", "wrong password!").await;
    let unknown_status = unknown.status();
    let unknown_html = unknown.text().await.expect("body");
    assert_eq!(wrong_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_status, wrong_status);
    let message = "That username or e-mail and password do not match. Check them and try again.";
    assert!(wrong_html.contains(message) && unknown_html.contains(message));
    assert_eq!(
        wrong_html.replace("value=\"fred\"", ""),
        unknown_html.replace("value=\"nobody\"", ""),
        "the two pages differ only in the typed username"
    );
    assert_eq!(app.whoami().await, None);
}

async fn empty_fields_are_named_next_to_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let html = assert_form_error(
        app.login_with_password("", "").await,
        "Enter your username or e-mail address.",
    )
    .await;
    assert!(html.contains("Enter your password."));
    assert!(html.contains("aria-invalid=\"true\""));
}

async fn a_code_member_sets_a_password_and_then_logs_in_with_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("ginger@example.org", "Ginger Rogers").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    let page = app.get_html("/accounts/password").await;
    assert!(page.contains("Set a password"));
    assert!(
        !page.contains("Current password"),
        "code members have no current password"
    );

    // Mismatch and too short: form back with messages.
    assert_form_error(
        app.post_form(
            "/accounts/password",
            &[("new_password", "short"), ("confirm_password", "short")],
        )
        .await,
        "Use at least 10 characters",
    )
    .await;
    let response = app
        .post_form(
            "/accounts/password",
            &[
                ("new_password", "cheek to cheek 1935"),
                ("confirm_password", "cheek to cheek 1936"),
            ],
        )
        .await;
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("The two passwords do not match.")
    );

    let response = app
        .post_form(
            "/accounts/password",
            &[
                ("new_password", "cheek to cheek 1935"),
                ("confirm_password", "cheek to cheek 1935"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/");
    assert!(
        app.get_html("/")
            .await
            .contains("Your password has been set.")
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$%'")
            .await,
        1
    );

    app.post_form("/accounts/logout", &[]).await;
    assert_redirects_to(
        &app.login_with_password("ginger@example.org", "cheek to cheek 1935")
            .await,
        "/",
    );
    assert_eq!(app.whoami().await.as_deref(), Some("ginger@example.org"));
}

async fn changing_a_password_needs_the_current_one_and_ends_other_sessions(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    // A second browser, logged in as the same member.
    let other_jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let other = client_with(other_jar.clone());
    other
        .get(app.url("/accounts/login"))
        .send()
        .await
        .expect("page");
    let token =
        crate::helpers::cookie_in(&other_jar, &app.address, "gatehouse_csrf").expect("token");
    let response = other
        .post(app.url("/accounts/login"))
        .form(&[
            ("username", "fred"),
            ("password", "tap dancing shoes"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    assert_form_error(
        app.post_form(
            "/accounts/password",
            &[
                ("current_password", "not my password"),
                ("new_password", "top hat white tie"),
                ("confirm_password", "top hat white tie"),
            ],
        )
        .await,
        "That is not your current password.",
    )
    .await;

    let response = app
        .post_form(
            "/accounts/password",
            &[
                ("current_password", "tap dancing shoes"),
                ("new_password", "top hat white tie"),
                ("confirm_password", "top hat white tie"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/");
    assert_eq!(
        app.whoami().await.as_deref(),
        Some("fred"),
        "this session goes on"
    );
    let other_home = other
        .get(app.url("/"))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("body");
    assert!(
        !other_home.contains("Signed in as"),
        "the other session has ended"
    );
    app.post_form("/accounts/logout", &[]).await;
    assert_eq!(
        app.login_with_password("fred", "tap dancing shoes")
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_redirects_to(
        &app.login_with_password("fred", "top hat white tie").await,
        "/",
    );
}

async fn a_post_without_the_csrf_token_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("csrf@example.org", "Cross Site").await;
    app.get("/accounts/login").await;
    for form in [
        vec![("code", code.as_str())],
        vec![("code", code.as_str()), ("csrf_token", "forged.abc")],
    ] {
        let response = app
            .client
            .post(app.url("/accounts/login/code"))
            .form(&form)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let html = response.text().await.expect("body");
        assert!(html.contains("This form has expired or was not sent from this site."));
    }
    // Without any cookie at all (a cross-site form post).
    let bare = reqwest::Client::new();
    let response = bare
        .post(app.url("/accounts/login/code"))
        .form(&[("code", code.as_str()), ("csrf_token", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.whoami().await, None);
}

async fn next_is_followed_only_to_local_paths(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for (next, expected) in [
        ("https://evil.example/steal", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/accounts/password", "/accounts/password"),
    ] {
        let response = app
            .post_form(
                "/accounts/login",
                &[
                    ("username", "fred"),
                    ("password", "tap dancing shoes"),
                    ("next", next),
                ],
            )
            .await;
        assert_redirects_to(&response, expected);
        app.post_form("/accounts/logout", &[]).await;
    }
    // The login page does not even echo a foreign next into its forms.
    let html = app
        .get_html("/accounts/login?next=https://evil.example")
        .await;
    assert!(!html.contains("evil.example"));
}

async fn anonymous_visitors_to_member_pages_are_sent_to_log_in_and_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/accounts/password").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        location(&response),
        "/accounts/login?next=%2Faccounts%2Fpassword"
    );
    let html = app
        .get_html("/accounts/login?next=%2Faccounts%2Fpassword")
        .await;
    // Tera escapes '/' in attribute values; browsers read it back as '/'.
    assert!(html.contains("name=\"next\" value=\"&#x2F;accounts&#x2F;password\""));
}

async fn a_get_on_logout_does_not_log_out(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    let response = app.get("/accounts/logout").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
    assert_redirects_to(
        &app.post_form("/accounts/logout", &[]).await,
        "/accounts/logged-out",
    );
    assert!(
        app.get_html("/accounts/logged-out")
            .await
            .contains("You have logged out")
    );
    assert_eq!(app.whoami().await, None);
}

async fn the_session_id_is_renewed_at_login_and_the_old_one_dies(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    let first = app.cookie("gatehouse_session").expect("a session cookie");
    // Logging in again (as someone else) renews the id.
    app.create_user("ginger", "ginger@example.org", "cheek to cheek 1935", false)
        .await;
    app.login_with_password("ginger", "cheek to cheek 1935")
        .await;
    let second = app.cookie("gatehouse_session").expect("a session cookie");
    assert_ne!(first, second);
    assert_eq!(app.whoami().await.as_deref(), Some("ginger"));
    // The old cookie is worth nothing now.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(
        &format!("gatehouse_session={first}"),
        &app.address.parse().expect("url"),
    );
    let stale = client_with(jar);
    let html = stale
        .get(app.url("/"))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("body");
    assert!(!html.contains("Signed in as"));
    // Session rows hold hashes, not the cookie's key.
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sessions WHERE LENGTH(id) = 64")
            .await,
        1
    );
}

async fn sessions_are_stored_in_the_database_and_survive_a_restart(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    let cookie = app.cookie("gatehouse_session").expect("cookie");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions").await, 1);
    // A second instance on the same database and secret knows the session.
    let mut settings = crate::helpers::test_settings();
    settings.database.url = app.state.settings.database.url.clone();
    settings.secret_key = app.state.settings.secret_key.clone();
    let second = gatehouse::Application::build(settings)
        .await
        .expect("second instance");
    let port = second.port();
    tokio::spawn(second.run_until_stopped());
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let address = format!("http://127.0.0.1:{port}");
    jar.add_cookie_str(
        &format!("gatehouse_session={cookie}"),
        &address.parse().expect("url"),
    );
    let html = client_with(jar)
        .get(format!("{address}/"))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("body");
    assert!(html.contains("Signed in as fred"));
}

async fn a_session_ended_mid_request_is_not_written_back(backend: Backend) {
    use actix_session::storage::{SessionKey, SessionStore};
    use actix_web::cookie::time::Duration;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let store = gatehouse::web::sessions::DbSessionStore::new(
        app.db().clone(),
        app.state.lane.clone(),
        "visitor:session",
        app.state.keys.session_key(),
        app.state.sessions.clone(),
    );
    let ttl = Duration::hours(1);
    let mut state = std::collections::HashMap::new();
    state.insert("actix_identity.user_id".to_owned(), "\"7\"".to_owned());
    let key = store.save(state.clone(), &ttl).await.expect("saved");
    let key_text = key.as_ref().to_owned();
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sessions WHERE user_id = 7")
            .await,
        1
    );
    // Ended elsewhere (password change) while a request was in flight...
    gatehouse::web::sessions::end_sessions_of_user(app.db(), 7)
        .await
        .expect("ended");
    // ...whose response then writes its (logged-in) state back.
    let new_key = store.update(key, state, &ttl).await.expect("updated");
    assert_ne!(new_key.as_ref(), key_text);
    let loaded = store
        .load(&new_key)
        .await
        .expect("load")
        .expect("a session");
    assert!(
        loaded.is_empty(),
        "the login was not resurrected: {loaded:?}"
    );
    let old = SessionKey::try_from(key_text).expect("key");
    assert!(store.load(&old).await.expect("load").is_none());
}

async fn rows_loaded_with_a_session_are_never_stored_in_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    app.login_with_password("fred", "tap dancing shoes").await;
    app.follow_link(&format!("/?vid={token}")).await;
    // Both rows are loaded with the session here, and the state is written
    // back (the welcome message is consumed).
    assert!(app.get_html("/").await.contains("Signed in as fred"));
    assert!(
        app.get_html("/visitors/demo")
            .await
            .contains("You are a visitor")
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM sessions WHERE data LIKE '%gatehouse.loaded%' \
             OR data LIKE '%argon2%' OR data LIKE '%password_hash%'"
        )
        .await,
        0
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL AND visitor_id IS NOT NULL"
        )
        .await,
        1
    );
}

async fn a_logged_in_member_sees_who_they_are_on_the_login_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", true)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    let html = app.get_html("/accounts/login").await;
    assert!(html.contains("You are already logged in as fred"));
    let home = app.get_html("/").await;
    assert!(home.contains("as a staff member"));
}

backend_tests!(
    a_member_logs_in_with_username_or_email_and_password,
    a_username_match_wins_over_another_members_email,
    a_wrong_password_and_an_unknown_account_get_the_same_answer,
    empty_fields_are_named_next_to_the_field,
    a_code_member_sets_a_password_and_then_logs_in_with_it,
    changing_a_password_needs_the_current_one_and_ends_other_sessions,
    a_post_without_the_csrf_token_is_refused,
    next_is_followed_only_to_local_paths,
    anonymous_visitors_to_member_pages_are_sent_to_log_in_and_back,
    a_get_on_logout_does_not_log_out,
    the_session_id_is_renewed_at_login_and_the_old_one_dies,
    sessions_are_stored_in_the_database_and_survive_a_restart,
    a_session_ended_mid_request_is_not_written_back,
    rows_loaded_with_a_session_are_never_stored_in_it,
    a_logged_in_member_sees_who_they_are_on_the_login_page,
);
