//! Visitor passes beyond what staff hand out: the default session lifetime
//! and its two modes (`visitors.session_expiry_secs`, `session_expiry_mode`).

use std::time::Duration;

use gatehouse::settings::SessionExpiryMode;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, spawn_app_with};

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
    an_idle_visitor_session_lasts_while_the_visitor_is_active,
    an_absolute_visitor_session_ends_on_time_however_active,
);
