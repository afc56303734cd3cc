//! Abuse resistance: attempt limits per account, per address and for code
//! guesses (429 + Retry-After), and the captcha's escalation and single use.

use chrono::{Duration, Utc};
use gatehouse::accounts::throttle::{self, Kind, Limits, Verdict};
use gatehouse::settings::CaptchaMode;
use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_form_error, assert_redirects_to, spawn_app_with};

async fn app_with_captcha(backend: Backend, captcha: CaptchaMode) -> Option<TestApp> {
    spawn_app_with(backend, |settings| settings.security.captcha = captcha).await
}

/// The number in a captcha question on the page, answered.
fn answer(html: &str) -> String {
    let start = html.find("What is ").expect("a captcha question") + "What is ".len();
    let question = &html[start..start + 20];
    let mut numbers = question
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse::<u32>().expect("number"));
    let (a, b) = (numbers.next().expect("a"), numbers.next().expect("b"));
    (a + b).to_string()
}

async fn assert_locked(response: reqwest::Response, at_most_seconds: i64) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= at_most_seconds, "Retry-After {retry}");
    let html = response.text().await.expect("body");
    assert!(html.contains("Too many failed attempts"), "{html}");
    assert!(html.contains("try again in"));
}

async fn an_account_is_locked_after_five_failures_in_the_window(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Off).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for _ in 0..5 {
        assert_form_error(
            app.login_with_password("fred", "wrong guess!").await,
            "do not match",
        )
        .await;
    }
    // Even the right password waits now, from any spelling of the account.
    assert_locked(
        app.login_with_password("FRED", "tap dancing shoes").await,
        15 * 60,
    )
    .await;
    // Another account from the same address is not affected.
    app.create_user("ginger", "ginger@example.org", "cheek to cheek 1935", false)
        .await;
    assert_redirects_to(
        &app.login_with_password("ginger", "cheek to cheek 1935")
            .await,
        "/",
    );
    // When the failures leave the window, the account opens again.
    app.execute(&format!(
        "UPDATE login_attempts SET created_at = {}",
        app.days_ago(1)
    ))
    .await;
    app.post_form("/accounts/logout", &[]).await;
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
}

async fn an_address_is_locked_after_twenty_failures(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Off).await else {
        return;
    };
    for n in 0..20 {
        let response = app
            .login_with_password(&format!("nobody{n}"), "wrong guess!")
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "attempt {n}"
        );
    }
    assert_locked(
        app.login_with_password("someone-else", "whatever").await,
        15 * 60,
    )
    .await;
    assert_locked(app.login_with_code("ABCDEF234").await, 15 * 60).await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts").await,
        20,
        "refusals are not recorded"
    );
}

async fn a_success_clears_the_accounts_counter(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Off).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for _ in 0..4 {
        app.login_with_password("fred", "wrong guess!").await;
    }
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    app.post_form("/accounts/logout", &[]).await;
    for _ in 0..4 {
        assert_form_error(
            app.login_with_password("fred", "wrong guess!").await,
            "do not match",
        )
        .await;
    }
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
}

async fn code_guesses_from_one_address_are_capped_per_hour(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.security.captcha = CaptchaMode::Off;
        settings.security.ip_max_failures = 1000;
    })
    .await
    else {
        return;
    };
    let code = app.invite("ginger@example.org", "Ginger Rogers").await;
    for _ in 0..20 {
        assert_form_error(app.login_with_code("ABCDEF234").await, "not valid").await;
    }
    // The 21st guess is refused, even the right code, for up to an hour.
    assert_locked(app.login_with_code(&code).await, 3600).await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 0);
}

async fn the_captcha_is_asked_after_failures_and_each_answer_works_once(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::AfterFailures).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert!(!app.get_html("/accounts/login").await.contains("What is "));
    app.login_with_password("fred", "wrong guess!").await;
    app.login_with_password("fred", "wrong guess!").await;
    let html = assert_form_error(
        app.login_with_password("fred", "wrong guess!").await,
        "do not match",
    )
    .await;
    assert!(
        html.contains("What is "),
        "the third failure brings the question"
    );

    // Without an answer, or with a wrong one: asked again, not counted.
    let html = assert_form_error(
        app.login_with_password("fred", "tap dancing shoes").await,
        "Answer the question below",
    )
    .await;
    let wrong = (answer(&html).parse::<u32>().expect("n") + 1).to_string();
    let html = assert_form_error(
        app.post_form(
            "/accounts/login",
            &[
                ("username", "fred"),
                ("password", "tap dancing shoes"),
                ("captcha", &wrong),
            ],
        )
        .await,
        "That answer was not right",
    )
    .await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM login_attempts").await, 3);

    // A right answer with a wrong password uses the question up...
    let right = answer(&html);
    let html = assert_form_error(
        app.post_form(
            "/accounts/login",
            &[
                ("username", "fred"),
                ("password", "wrong again!"),
                ("captcha", &right),
            ],
        )
        .await,
        "do not match",
    )
    .await;
    // ...so the same answer again is refused (single use). Should the new
    // question have the same answer by chance, ask for another first.
    let mut html = html;
    while answer(&html) == right {
        html = assert_form_error(
            app.login_with_password("fred", "tap dancing shoes").await,
            "Answer the question below",
        )
        .await;
    }
    let html = assert_form_error(
        app.post_form(
            "/accounts/login",
            &[
                ("username", "fred"),
                ("password", "tap dancing shoes"),
                ("captcha", &right),
            ],
        )
        .await,
        "That answer was not right",
    )
    .await;
    assert!(
        !app.get_html("/accounts/login").await.contains("What is "),
        "a GET asks nothing in after_failures mode"
    );
    let response = app
        .post_form(
            "/accounts/login",
            &[
                ("username", "fred"),
                ("password", "tap dancing shoes"),
                ("captcha", &answer(&html)),
            ],
        )
        .await;
    assert_redirects_to(&response, "/");
}

async fn with_captcha_always_the_login_page_asks_at_once(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Always).await else {
        return;
    };
    let code = app.invite("ginger@example.org", "Ginger Rogers").await;
    let html = app.get_html("/accounts/login").await;
    assert!(html.contains("id=\"password-captcha\"") && html.contains("id=\"code-captcha\""));
    assert_form_error(
        app.login_with_code(&code).await,
        "Answer the question below",
    )
    .await;
    let html = app.get_html("/accounts/login").await;
    let response = app
        .post_form(
            "/accounts/login/code",
            &[("code", &code), ("captcha", &answer(&html))],
        )
        .await;
    assert_redirects_to(&response, "/");
}

/// Measured, not computed: a simulated day of one address guessing codes as
/// fast as the limits allow, minute by minute, at the default settings.
async fn one_address_gets_480_code_guesses_a_day_at_the_defaults(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let limits = Limits::from(&app.state.settings.security);
    let site_id = app.state.sites.for_host("127.0.0.1").await.id;
    let start = Utc::now() - Duration::days(2);
    let mut guesses = 0;
    for minute in 0..24 * 60 {
        let now = start + Duration::minutes(minute);
        while let Verdict::Allowed { .. } = throttle::check(
            app.db(),
            limits,
            site_id,
            Kind::Code,
            "203.0.113.5",
            None,
            now,
        )
        .await
        .expect("check")
        {
            throttle::record_failure(app.db(), site_id, Kind::Code, "203.0.113.5", None, now)
                .await
                .expect("record");
            guesses += 1;
        }
    }
    eprintln!("code guesses allowed from one address in 24 hours: {guesses}");
    assert_eq!(guesses, 480);
}

backend_tests!(
    an_account_is_locked_after_five_failures_in_the_window,
    an_address_is_locked_after_twenty_failures,
    a_success_clears_the_accounts_counter,
    code_guesses_from_one_address_are_capped_per_hour,
    the_captcha_is_asked_after_failures_and_each_answer_works_once,
    with_captcha_always_the_login_page_asks_at_once,
    one_address_gets_480_code_guesses_a_day_at_the_defaults,
);
