//! Password reset by e-mail: same answer for unknown accounts, a mailed
//! single-use link valid for an hour that leaves the address bar at once,
//! other sessions ended, common passwords refused, and requests limited.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, Browser, TestApp, assert_form_error, assert_redirects_to, spawn_app, unescape,
};

/// The path of the reset link in the newest mail to the sink.
async fn link_in_mail(app: &TestApp, count: usize) -> String {
    let messages = app.smtp.wait_for(count).await;
    let mail = messages.last().expect("a mail").parsed();
    assert!(
        mail.subject.starts_with("Reset your password on"),
        "{}",
        mail.subject
    );
    let start = mail
        .text
        .find("/accounts/password/reset/")
        .expect("a reset link in the text part");
    let path: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert!(
        unescape(&mail.html).contains(&path),
        "the HTML part has the link too"
    );
    path
}

/// Where an opened link leads: the same address for every reset.
const SET_PASSWORD: &str = "/accounts/password/reset/set-password";

/// Opens a reset link in `browser`: a 303 to the address without the token,
/// kept out of caches and Referers.
async fn open_link(browser: &Browser, path: &str) {
    let response = browser.get(path).await;
    assert_redirects_to(&response, SET_PASSWORD);
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

async fn ask(app: &TestApp, login: &str) -> reqwest::Response {
    app.post_form("/accounts/password/reset", &[("login", login)])
        .await
}

async fn unknown_and_known_accounts_get_the_same_answer_and_only_one_gets_mail(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert!(
        app.get_html("/accounts/login")
            .await
            .contains("href=\"/accounts/password/reset\"")
    );
    let unknown = ask(&app, "nobody@example.org").await;
    assert_redirects_to(&unknown, "/accounts/password/reset/sent");
    let known = ask(&app, "FRED@example.org").await;
    assert_redirects_to(&known, "/accounts/password/reset/sent");
    let page = app.get_html("/accounts/password/reset/sent").await;
    assert!(page.contains("If an account exists for what you typed"));

    let path = link_in_mail(&app, 1).await;
    // Give a mistaken mail for the unknown address a moment to show up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let messages = app.smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].parsed().to, "fred@example.org");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM password_resets").await, 1);
    let token = path.rsplit('/').next().expect("token");
    let dump = app.database_dump().await;
    assert!(!dump.contains(token), "only the token's hash is stored");
}

async fn the_link_sets_a_new_password_once_and_ends_every_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    // Fred is logged in on another device.
    let other = app.new_browser();
    assert_redirects_to(
        &other.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );

    ask(&app, "fred").await;
    let path = link_in_mail(&app, 1).await;
    let token = path.rsplit('/').next().expect("token").to_owned();
    // Without the link opened in this browser, the form is not there.
    assert_eq!(app.get(SET_PASSWORD).await.status(), StatusCode::GONE);
    open_link(&app.browser(), &path).await;
    let response = app.get(SET_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("Choose a new password")
    );
    // The session (stored in the database) names the reset, not its token.
    assert!(!app.database_dump().await.contains(&token));
    // Another browser, without the link, still gets nothing.
    assert_eq!(
        app.new_browser().get(SET_PASSWORD).await.status(),
        StatusCode::GONE
    );

    let refused = app
        .post_form(
            SET_PASSWORD,
            &[
                ("new_password", "password1234"),
                ("confirm_password", "password1234"),
            ],
        )
        .await;
    assert_eq!(refused.headers()["cache-control"], "no-store");
    assert_form_error(refused, "one of the most common ones").await;
    assert_form_error(
        app.post_form(
            SET_PASSWORD,
            &[
                ("new_password", "top hat white tie"),
                ("confirm_password", "top hat white tiE"),
            ],
        )
        .await,
        "The two passwords do not match.",
    )
    .await;
    let response = app
        .post_form(
            SET_PASSWORD,
            &[
                ("new_password", "top hat white tie"),
                ("confirm_password", "top hat white tie"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/accounts/password/reset/done");
    assert!(
        app.get_html("/accounts/password/reset/done")
            .await
            .contains("Your password has been changed")
    );
    assert_eq!(
        other.whoami().await,
        None,
        "the other device was logged out"
    );

    // Used once: the link is dead now, and so is the form.
    let again = app.get(&path).await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert_eq!(again.headers()["cache-control"], "no-store");
    assert!(
        again
            .text()
            .await
            .expect("body")
            .contains("This link no longer works")
    );
    let again = app
        .post_form(
            SET_PASSWORD,
            &[
                ("new_password", "another long one"),
                ("confirm_password", "another long one"),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::GONE);

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

async fn links_expire_after_an_hour_and_a_newer_one_replaces_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    ask(&app, "fred").await;
    let first = link_in_mail(&app, 1).await;
    ask(&app, "fred").await;
    let second = link_in_mail(&app, 2).await;
    assert_ne!(first, second);
    assert_eq!(
        app.get(&first).await.status(),
        StatusCode::GONE,
        "the newer link replaces the older"
    );
    open_link(&app.browser(), &second).await;
    assert_eq!(app.get(SET_PASSWORD).await.status(), StatusCode::OK);
    app.execute(&format!(
        "UPDATE password_resets SET expires_at = {}",
        app.days_ago(0)
    ))
    .await;
    assert_eq!(app.get(&second).await.status(), StatusCode::GONE);
    // An opened link expires on the form too.
    assert_eq!(app.get(SET_PASSWORD).await.status(), StatusCode::GONE);
    let late = app
        .post_form(
            SET_PASSWORD,
            &[
                ("new_password", "top hat white tie"),
                ("confirm_password", "top hat white tie"),
            ],
        )
        .await;
    assert_eq!(late.status(), StatusCode::GONE);
    for bogus in [
        "/accounts/password/reset/abc",
        "/accounts/password/reset/%00",
        &format!("/accounts/password/reset/{}", "f".repeat(64)),
    ] {
        assert!(app.get(bogus).await.status().is_client_error(), "{bogus}");
    }
}

async fn reset_requests_are_limited_without_locking_logins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for _ in 0..5 {
        assert_redirects_to(&ask(&app, "fred").await, "/accounts/password/reset/sent");
    }
    let response = ask(&app, "fred").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // Asking for links did not lock Fred out of logging in.
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    // An empty request gets the form back.
    app.post_form("/accounts/logout", &[]).await;
    assert_form_error(
        ask(&app, "  ").await,
        "Enter your username or e-mail address.",
    )
    .await;
}

/// A session cookie planted in the victim's browser before the link is
/// opened gives its planter nothing: opening the link renews the session.
async fn a_planted_session_does_not_receive_the_reset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.create_user(
        "mallory",
        "mallory@example.org",
        "mallory's password",
        false,
    )
    .await;
    let attacker = app.new_browser();
    assert_redirects_to(
        &attacker
            .login_with_password("mallory", "mallory's password")
            .await,
        "/",
    );
    let planted = attacker.cookie("gatehouse_session").expect("a session");
    let victim = app.new_browser();
    victim.jar.add_cookie_str(
        &format!("gatehouse_session={planted}; Path=/"),
        &app.address.parse().expect("url"),
    );
    ask(&app, "fred").await;
    let path = link_in_mail(&app, 1).await;
    open_link(&victim, &path).await;
    assert_ne!(victim.cookie("gatehouse_session"), Some(planted));
    assert_eq!(victim.get(SET_PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(
        attacker.get(SET_PASSWORD).await.status(),
        StatusCode::GONE,
        "the planted session does not hold the reset"
    );
}

/// HEAD (a link checker) on a reset link stores nothing.
async fn a_head_request_on_a_link_stores_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    ask(&app, "fred").await;
    let path = link_in_mail(&app, 1).await;
    let sessions = app.scalar("SELECT COUNT(*) FROM sessions").await;
    let response = app.client.head(app.url(&path)).send().await.expect("HEAD");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions").await, sessions);
    assert_eq!(app.get(SET_PASSWORD).await.status(), StatusCode::GONE);
    // The link still works afterwards.
    open_link(&app.browser(), &path).await;
    assert_eq!(app.get(SET_PASSWORD).await.status(), StatusCode::OK);
}

backend_tests!(
    a_planted_session_does_not_receive_the_reset,
    a_head_request_on_a_link_stores_nothing,
    unknown_and_known_accounts_get_the_same_answer_and_only_one_gets_mail,
    the_link_sets_a_new_password_once_and_ends_every_session,
    links_expire_after_an_hour_and_a_newer_one_replaces_them,
    reset_requests_are_limited_without_locking_logins,
);
