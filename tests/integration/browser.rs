//! The login page in a real browser (headless Chromium via chromedriver):
//! what a person invited with a code actually does.

use crate::helpers::{Backend, spawn_app};
use crate::support::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_person_logs_in_with_the_code_sets_a_password_and_logs_in_again() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let code = app.invite("ginger@example.org", "Ginger Rogers").await;

    // The e-mailed link pre-fills the quick form; a person types nothing.
    browser
        .goto(&app.url(&format!("/accounts/login?code={}", code.to_lowercase())))
        .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users").await,
        0,
        "the link alone logs no one in"
    );
    // The stylesheet is applied (served by the site itself, allowed by the CSP).
    let colour = browser
        .script("return getComputedStyle(document.querySelector('#code-login .button')).backgroundColor")
        .await;
    assert_ne!(
        colour.as_str(),
        Some("rgba(0, 0, 0, 0)"),
        "buttons are styled"
    );
    browser.click("#code-login button[type=submit]").await;
    browser.wait_for_text("Hello, Ginger Rogers").await;
    browser.wait_for_text("Welcome to Gatehouse, Ginger!").await;
    assert_eq!(browser.current_url().await, app.url("/"));

    // Set a password, with one mistake on the way.
    browser.click("a[href='/accounts/password']").await;
    browser.fill("#new_password", "cheek to cheek 1935").await;
    browser
        .fill("#confirm_password", "cheek to cheek 1936")
        .await;
    browser.click("#password-form button[type=submit]").await;
    browser
        .wait_for_text("The two passwords do not match.")
        .await;
    browser.fill("#new_password", "cheek to cheek 1935").await;
    browser
        .fill("#confirm_password", "cheek to cheek 1935")
        .await;
    browser.click("#password-form button[type=submit]").await;
    browser.wait_for_text("Your password has been set.").await;

    // Log out, then in with the password form.
    browser
        .click("form[action='/accounts/logout'] button")
        .await;
    browser.wait_for_text("You have logged out").await;
    browser.goto(&app.url("/accounts/login")).await;
    browser.fill("#username", "Ginger@example.org").await;
    browser.fill("#password", "wrong password").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("do not match").await;
    assert_eq!(
        browser
            .script("return document.querySelector('#username').value")
            .await
            .as_str(),
        Some("Ginger@example.org"),
        "the typed username is kept"
    );
    browser.fill("#password", "cheek to cheek 1935").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("Welcome back, Ginger.").await;
    assert!(
        browser
            .source()
            .await
            .contains("Signed in as ginger@example.org")
    );
    browser.quit().await;
}
