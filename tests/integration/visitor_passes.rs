//! Visitor passes beyond what staff hand out: "request access" (a pass
//! mailed to whoever asks, on pages that offer it), and the default session
//! lifetime and its two modes (`visitors.session_expiry_secs`,
//! `session_expiry_mode`).

use std::time::Duration;

use gatehouse::settings::SessionExpiryMode;

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_redirects_to, location, spawn_app_with, unescape};

const PAGE: &str = "/visitors/demo/self-service?topic=a%20b";

async fn rows(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["visitors", "login_attempts", "sessions", "mail_outbox"] {
        counts.push(app.scalar(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts
}

/// The request-access form's hidden fields, from its page.
fn offer_fields(html: &str) -> Vec<(String, String)> {
    ["scope", "next", "sig"]
        .iter()
        .map(|name| {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html
                .find(&marker)
                .unwrap_or_else(|| panic!("{name} in {html}"))
                + marker.len();
            let end = html[start..].find('"').expect("quote") + start;
            ((*name).to_owned(), unescape(&html[start..end]))
        })
        .collect()
}

/// The link path in the newest mail to `to`, after `count` mails.
async fn link_for(app: &TestApp, count: usize, to: &str) -> String {
    let messages = app.smtp.wait_for(count).await;
    let mail = messages
        .iter()
        .rev()
        .map(|m| m.parsed())
        .find(|m| m.to == to)
        .unwrap_or_else(|| panic!("no mail to {to}"));
    assert_eq!(mail.subject, "Your link to Gatehouse");
    let start = mail
        .text
        .find("/visitors/demo/self-service?")
        .expect("a link");
    mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

async fn request_access_mails_a_link_that_returns_to_the_page_asked_for(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let before = rows(&app).await;
    // Turned away: sent to the form, and nothing is written (bots included).
    let browser = app.new_browser();
    let response = browser.get(PAGE).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let form_url = location(&response);
    assert!(
        form_url.starts_with("/visitors/request?scope=demo-self-service&next="),
        "{form_url}"
    );
    for _ in 0..5 {
        app.new_browser().get(PAGE).await;
    }
    let html = browser.get_html(&form_url).await;
    assert!(html.contains("id=\"visitor-request\""), "{html}");
    assert_eq!(
        rows(&app).await,
        before,
        "turning people away writes nothing"
    );

    // The scope cannot be changed on the way: the form is only for scopes
    // whose pages offer it.
    let forged = form_url.replace("scope=demo-self-service", "scope=reference-request");
    assert_eq!(browser.get(&forged).await.status(), StatusCode::BAD_REQUEST);
    let mut fields = offer_fields(&html);
    fields[0].1 = "reference-request".into();
    let forged: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut with_details = forged.clone();
    with_details.extend([
        ("first_name", "Mallory"),
        ("last_name", "M"),
        ("email", "m@example.org"),
    ]);
    let refused = browser.post_form("/visitors/request", &with_details).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    // A mistake gives the form back with what was typed.
    let fields = offer_fields(&html);
    let offer: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut typo = offer.clone();
    typo.extend([
        ("first_name", "Ginger"),
        ("last_name", ""),
        ("email", "ginger@"),
    ]);
    let response = browser.post_form("/visitors/request", &typo).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("body");
    assert!(html.contains("value=\"Ginger\""), "{html}");
    assert!(html.contains("Enter your last name."), "{html}");
    assert!(html.contains("Enter a valid e-mail address"), "{html}");

    let mut good = offer.clone();
    good.extend([
        ("first_name", "Ginger"),
        ("last_name", "Rogers"),
        ("email", "Ginger@Example.org"),
    ]);
    let response = browser.post_form("/visitors/request", &good).await;
    assert_redirects_to(&response, "/visitors/request/sent");
    assert!(
        browser
            .get_html("/visitors/request/sent")
            .await
            .contains("Check your e-mail")
    );
    // Asking is not entering: only the mailed link lets anyone in.
    assert_eq!(browser.get(PAGE).await.status(), StatusCode::SEE_OTHER);

    let link = link_for(&app, 1, "ginger@example.org").await;
    let entered = app.new_browser();
    let response = entered.follow_link(&link).await;
    assert_redirects_to(&response, PAGE);
    let html = entered.get_html(PAGE).await;
    assert!(html.contains("Ginger Rogers"), "{html}");
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM visitors WHERE scope = 'demo-self-service' \
             AND email = 'ginger@example.org' AND is_active = true"
        )
        .await,
        1
    );
}

async fn request_access_is_limited_per_email_and_per_address(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.visitors.self_service_per_email_per_hour = 2;
        settings.visitors.self_service_per_address_per_hour = 4;
    })
    .await
    else {
        return;
    };
    let browser = app.new_browser();
    let form_url = location(&browser.get(PAGE).await);
    let fields = offer_fields(&browser.get_html(&form_url).await);
    let offer: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ask = |email: &'static str| {
        let mut form = offer.clone();
        form.extend([
            ("first_name", "Ann"),
            ("last_name", "Lee"),
            ("email", email),
        ]);
        let browser = &browser;
        async move { browser.post_form("/visitors/request", &form).await }
    };
    for _ in 0..2 {
        assert_redirects_to(&ask("ann@example.org").await, "/visitors/request/sent");
    }
    let refused = ask("ANN@example.org").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    // Another address is fine until the client's own limit.
    for email in ["bo@example.org", "cy@example.org"] {
        assert_redirects_to(&ask(email).await, "/visitors/request/sent");
    }
    assert_eq!(
        ask("di@example.org").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.smtp.wait_for(4).await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM visitors").await, 4);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM mail_outbox").await, 4);
}

async fn app_in(backend: Backend, mode: SessionExpiryMode) -> Option<TestApp> {
    spawn_app_with(backend, |settings| {
        settings.visitors.session_expiry_mode = mode;
    })
    .await
}

/// Requests `/` once a second for `seconds`; whether the visitor was still
/// greeted at the last one.
async fn keeps_visiting(browser: &crate::helpers::Browser, seconds: u64) -> bool {
    let mut greeted = false;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        greeted = browser.get_html("/").await.contains("Hello, Bob");
    }
    greeted
}

async fn an_idle_visitor_session_lasts_while_the_visitor_is_active(backend: Backend) {
    let Some(app) = app_in(backend, SessionExpiryMode::Idle).await else {
        return;
    };
    let (_, token) = app.visitor_with("demo", "b@example.org", "Bob", 3).await;
    let browser = app.new_browser();
    browser.follow_link(&format!("/?vid={token}")).await;
    assert!(browser.get_html("/").await.contains("Hello, Bob"));
    // Five seconds of requests a second apart: each moves the end on.
    assert!(
        keeps_visiting(&browser, 5).await,
        "still visiting after 5 s"
    );
    // Then three seconds and more of nothing: the visit has ended.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert!(!browser.get_html("/").await.contains("Hello, Bob"));
}

async fn an_absolute_visitor_session_ends_on_time_however_active(backend: Backend) {
    let Some(app) = app_in(backend, SessionExpiryMode::Absolute).await else {
        return;
    };
    let (_, token) = app.visitor_with("demo", "b@example.org", "Bob", 3).await;
    let browser = app.new_browser();
    browser.follow_link(&format!("/?vid={token}")).await;
    assert!(browser.get_html("/").await.contains("Hello, Bob"));
    assert!(
        !keeps_visiting(&browser, 5).await,
        "ended 3 s after the link"
    );
}

backend_tests!(
    request_access_mails_a_link_that_returns_to_the_page_asked_for,
    request_access_is_limited_per_email_and_per_address,
    an_idle_visitor_session_lasts_while_the_visitor_is_active,
    an_absolute_visitor_session_ends_on_time_however_active,
);
