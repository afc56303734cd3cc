//! Abuse resistance: attempt limits per account, per address and for code
//! guesses (429 + Retry-After), and the captcha's escalation and single use.

use chrono::{Duration, Utc};
use gatehouse::accounts::throttle::{self, Limits};
use gatehouse::attempts::{self, Admission, Attempt, Kind, Outcome};
use gatehouse::settings::CaptchaMode;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_form_error, assert_redirects_to, spawn_app, spawn_app_with,
};
use crate::support::burst::{self, RawRequest, RawResponse};

/// The app's browser's `Cookie` header and CSRF token, for raw requests.
pub async fn cookies_and_token(app: &TestApp) -> (String, String) {
    let token = app.csrf_token().await;
    let url = app.address.parse().expect("url");
    let cookies = app
        .jar
        .cookies(&url)
        .map(|header| header.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    (cookies, token)
}

/// POSTs each form to `path` from the app's browser, all at the same instant.
pub async fn post_at_once(
    app: &TestApp,
    path: &str,
    forms: &[Vec<(&str, &str)>],
) -> Vec<RawResponse> {
    let (cookies, token) = cookies_and_token(app).await;
    let address = app.address.trim_start_matches("http://");
    let requests = forms
        .iter()
        .map(|fields| {
            let mut fields = fields.clone();
            fields.push(("csrf_token", &token));
            RawRequest::form(address, path, &cookies, &fields)
        })
        .collect();
    burst::at_once(address, requests).await
}

/// How many responses were judged (the form back with `judged_message`) and
/// how many refused with 429; panics on anything else.
fn judged_and_refused(responses: &[RawResponse], judged_message: &str) -> (usize, usize) {
    let mut judged = 0;
    let mut refused = 0;
    for response in responses {
        match response.status {
            422 if response.text.contains(judged_message) => judged += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    (judged, refused)
}

/// An app for bursts at one account: two workers, and an address limit out
/// of the way so that the account's limit is what is measured.
async fn app_for_bursts(backend: Backend, captcha: CaptchaMode) -> Option<TestApp> {
    spawn_app_with(backend, |settings| {
        settings.security.captcha = captcha;
        settings.security.ip_max_failures = 1000;
        settings.server.workers = 2;
    })
    .await
}

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
        "Answer this question to show you are a person",
    )
    .await;
    let wrong = (answer(&html).parse::<u32>().expect("n") + 1).to_string();
    let html = assert_form_error(
        app.login_answering("fred", "tap dancing shoes", &wrong)
            .await,
        "That answer was not right",
    )
    .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE outcome = 'failed'")
            .await,
        3,
        "neither was judged"
    );

    // A right answer with a wrong password uses the question up...
    let right = answer(&html);
    let html = assert_form_error(
        app.login_answering("fred", "wrong again!", &right).await,
        "do not match",
    )
    .await;
    // ...so the same answer again is refused (single use). Should the new
    // question have the same answer by chance, ask for another first.
    let mut html = html;
    while answer(&html) == right {
        html = assert_form_error(
            app.login_with_password("fred", "tap dancing shoes").await,
            "Answer this question to show you are a person",
        )
        .await;
    }
    let html = assert_form_error(
        app.login_answering("fred", "tap dancing shoes", &right)
            .await,
        "That answer was not right",
    )
    .await;
    assert!(
        !app.get_html("/accounts/login").await.contains("What is "),
        "a GET asks nothing in after_failures mode"
    );
    let response = app
        .login_answering("fred", "tap dancing shoes", &answer(&html))
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
        "Answer this question to show you are a person",
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
    let limits = Limits::from(&app.state.settings.security).for_kind(Kind::Code);
    let site_id = app.state.sites.for_host("127.0.0.1").await.id;
    let attempt = Attempt {
        kind: Kind::Code,
        site_id,
        ip: "203.0.113.5".into(),
        account: None,
    };
    let start = Utc::now() - Duration::days(2);
    let mut guesses = 0;
    for minute in 0..24 * 60 {
        let now = start + Duration::minutes(minute);
        while let Admission::Admitted { ticket, .. } =
            attempts::admit(app.db(), &app.state.lane, &attempt, &limits, now)
                .await
                .expect("admit")
        {
            ticket
                .resolve(app.db(), Outcome::Failed)
                .await
                .expect("resolve");
            guesses += 1;
        }
    }
    eprintln!("code guesses allowed from one address in 24 hours: {guesses}");
    assert_eq!(guesses, 480);
}

async fn simultaneous_wrong_passwords_for_one_account_are_judged_exactly_five_times(
    backend: Backend,
) {
    let Some(app) = app_for_bursts(backend, CaptchaMode::Off).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    // One account, four spellings.
    let spellings = ["fred", "Fred", " FRED ", "fred@example.org"];
    let forms: Vec<Vec<(&str, &str)>> = (0..60)
        .map(|n| {
            vec![
                ("username", spellings[n % spellings.len()]),
                ("password", "wrong guess!"),
            ]
        })
        .collect();
    let responses = post_at_once(&app, "/accounts/login", &forms).await;
    let (judged, refused) = judged_and_refused(&responses, "do not match");
    eprintln!("60 simultaneous wrong passwords: {judged} judged, {refused} x 429");
    // Exactly: admissions are serialised, so each sees all the ones before
    // it, and never one that came after (which would refuse too many).
    assert_eq!(judged, 5, "{judged} judged");
    assert_eq!(judged + refused, 60);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE outcome = 'failed'")
            .await,
        i64::try_from(judged).expect("small")
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE outcome <> 'failed'")
            .await,
        0,
        "refused attempts keep no row"
    );
}

async fn simultaneous_code_guesses_from_one_address_are_judged_exactly_twenty_times(
    backend: Backend,
) {
    let Some(app) = app_for_bursts(backend, CaptchaMode::Off).await else {
        return;
    };
    let forms: Vec<Vec<(&str, &str)>> = (0..100).map(|_| vec![("code", "ABCDEF234")]).collect();
    let responses = post_at_once(&app, "/accounts/login/code", &forms).await;
    let (judged, refused) = judged_and_refused(&responses, "not valid");
    eprintln!("100 simultaneous code guesses: {judged} judged, {refused} x 429");
    assert_eq!(judged, 20, "{judged} judged");
    assert_eq!(judged + refused, 100);
}

async fn simultaneous_reset_requests_are_capped_at_exactly_five(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| settings.server.workers = 2).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let forms: Vec<Vec<(&str, &str)>> = (0..30).map(|_| vec![("login", "Fred")]).collect();
    let responses = post_at_once(&app, "/accounts/password/reset", &forms).await;
    let sent = responses.iter().filter(|r| r.status == 303).count();
    let refused = responses.iter().filter(|r| r.status == 429).count();
    eprintln!("30 simultaneous reset requests: {sent} accepted, {refused} x 429");
    assert_eq!(sent, 5, "{sent} accepted");
    assert_eq!(sent + refused, 30);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE kind = 'reset'")
            .await,
        i64::try_from(sent).expect("small")
    );
}

async fn every_spelling_of_an_account_shares_one_counter(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Off).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for login in [
        "fred",
        "FRED",
        "Fred@Example.org",
        "fred@example.org",
        "fReD",
    ] {
        assert_form_error(
            app.login_with_password(login, "wrong guess!").await,
            "do not match",
        )
        .await;
    }
    assert_locked(
        app.login_with_password("fred@example.org", "tap dancing shoes")
            .await,
        15 * 60,
    )
    .await;
    // Under the key every other flow names the account by (the login form
    // has the database work it out as it records the attempt).
    let fred = app
        .scalar("SELECT id FROM users WHERE username = 'fred'")
        .await;
    let key = attempts::account_of_user(fred);
    let counted = format!("SELECT COUNT(*) FROM login_attempts WHERE account = '{key}'");
    assert_eq!(app.scalar(&counted).await, 5);
    // An unknown name is counted under its normalised form.
    for login in ["nosuch", "NoSuch", " NOSUCH", "nosuch ", "nOsUcH"] {
        assert_form_error(
            app.login_with_password(login, "wrong guess!").await,
            "do not match",
        )
        .await;
    }
    assert_locked(
        app.login_with_password("NOSUCH", "x-x-x-x-x").await,
        15 * 60,
    )
    .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE account = 'name:nosuch'")
            .await,
        5
    );
}

async fn a_success_marks_its_own_row_and_later_failures_count_afresh(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let limits = Limits::from(&app.state.settings.security).for_kind(Kind::Password);
    let site_id = app.state.sites.for_host("127.0.0.1").await.id;
    let attempt = Attempt {
        kind: Kind::Password,
        site_id,
        ip: "203.0.113.9".into(),
        account: Some(attempts::account_of_user(7)),
    };
    let now = Utc::now();
    let admit = || async {
        match attempts::admit(app.db(), &app.state.lane, &attempt, &limits, now)
            .await
            .expect("admit")
        {
            Admission::Admitted { ticket, failures } => (ticket, failures),
            Admission::Refused { .. } => panic!("refused"),
        }
    };
    for _ in 0..3 {
        let (ticket, _) = admit().await;
        ticket
            .resolve(app.db(), Outcome::Failed)
            .await
            .expect("resolve");
    }
    // Two at once: one still pending when the other succeeds.
    let (pending, failures) = admit().await;
    assert_eq!(failures[throttle::ACCOUNT], 3);
    let (success, failures) = admit().await;
    assert_eq!(
        failures[throttle::ACCOUNT],
        4,
        "for the captcha, an account's attempts in flight count too"
    );
    success
        .resolve(app.db(), Outcome::Succeeded)
        .await
        .expect("resolve");
    pending
        .resolve(app.db(), Outcome::Failed)
        .await
        .expect("resolve");
    let (ticket, failures) = admit().await;
    assert_eq!(
        failures[throttle::ACCOUNT],
        0,
        "counting restarts after a success"
    );
    assert_eq!(
        failures[throttle::ADDRESS],
        4,
        "the address's failures still count"
    );
    ticket.withdraw(app.db()).await.expect("withdraw");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE outcome = 'succeeded'")
            .await,
        1
    );
}

async fn the_login_page_asks_the_captcha_before_it_is_demanded(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::AfterFailures).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    // Ten people behind one address each mistype once: everyone there is
    // asked from now on, on a freshly loaded page.
    for n in 0..10 {
        assert_form_error(
            app.login_with_password(&format!("member{n}"), "wrong guess!")
                .await,
            "do not match",
        )
        .await;
    }
    let fresh = app.new_browser();
    let html = fresh.get_html("/accounts/login").await;
    assert!(html.contains("What is "), "a fresh page asks the question");
    // So the first real attempt from there gets in.
    let response = fresh
        .login_answering("fred", "tap dancing shoes", &answer(&html))
        .await;
    assert_redirects_to(&response, "/");
}

async fn an_account_gets_the_question_after_three_failures_below_the_address_threshold(
    backend: Backend,
) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::AfterFailures).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for n in 0..2 {
        let html = assert_form_error(
            app.login_with_password(&format!("member{n}"), "wrong guess!")
                .await,
            "do not match",
        )
        .await;
        assert!(
            !html.contains("What is "),
            "two failures from an address ask nothing"
        );
    }
    assert!(!app.get_html("/accounts/login").await.contains("What is "));
    for _ in 0..2 {
        app.login_with_password("fred", "wrong guess!").await;
    }
    let html = assert_form_error(
        app.login_with_password("Fred", "wrong guess!").await,
        "do not match",
    )
    .await;
    assert!(html.contains("What is "), "fred's third failure brings it");
    // The question sits with its field, and the message says what to do.
    let html = assert_form_error(
        app.login_with_password("fred", "tap dancing shoes").await,
        "Answer this question to show you are a person",
    )
    .await;
    let question = html.find("for=\"password-captcha\"").expect("question");
    let message = html.find("id=\"password-captcha-error\"").expect("message");
    let field = html.find("id=\"password-captcha\" ").expect("field");
    assert!(
        question < message && message < field,
        "label, message, then the field"
    );
}

async fn a_captcha_answer_cannot_be_replayed_from_an_old_cookie(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Always).await else {
        return;
    };
    let html = app.get_html("/accounts/login").await;
    let right = answer(&html);
    // The cookies holding this question's challenge, kept aside.
    let (cookies, token) = cookies_and_token(&app).await;
    assert_form_error(
        app.login_answering("fred", "wrong!", &right).await,
        "do not match",
    )
    .await;
    // The same old cookie and answer again, as a script would.
    let address = app.address.trim_start_matches("http://");
    let replay = RawRequest::form(
        address,
        "/accounts/login",
        &cookies,
        &[
            ("username", "fred"),
            ("password", "wrong again!"),
            ("captcha", &right),
            ("csrf_token", &token),
        ],
    );
    let response = burst::at_once(address, vec![replay]).await.remove(0);
    assert_eq!(response.status, 422);
    assert!(response.text.contains("That answer was not right"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE outcome = 'failed'")
            .await,
        1,
        "the replay was not judged"
    );
}

async fn anonymous_visitors_write_no_session_rows(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Always).await else {
        return;
    };
    for _ in 0..5 {
        let html = app.get_html("/accounts/login").await;
        assert!(html.contains("What is "));
        assert_form_error(
            app.login_answering("nobody", "wrong!", &answer(&html))
                .await,
            "do not match",
        )
        .await;
        let stranger = app.new_browser();
        stranger.get_html("/accounts/login").await;
        stranger
            .post_form(
                "/visitors/enter",
                &[("token", "not-a-token"), ("next", "/")],
            )
            .await;
    }
    // A script repeating a failing request from one cookie jar does not grow
    // the session into a row either (messages are capped and not repeated).
    let script = app.new_browser();
    script.get_html("/accounts/login").await;
    let token = "0".repeat(32);
    for _ in 0..40 {
        script
            .post_form("/visitors/enter", &[("token", &token), ("next", "/")])
            .await;
    }
    let cookie = script
        .cookie("gatehouse_session")
        .expect("a sealed session");
    assert!(cookie.len() < 1500, "{} characters", cookie.len());
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions").await, 0);
    // A member's session is a row, as before.
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let html = app.get_html("/accounts/login").await;
    let response = app
        .login_answering("fred", "tap dancing shoes", &answer(&html))
        .await;
    assert_redirects_to(&response, "/");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions").await, 1);
}

async fn the_current_password_meets_the_login_limits(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Off).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    let change = async |current: &str| {
        app.post_form(
            "/accounts/password",
            &[
                ("current_password", current),
                ("new_password", "a brand new password"),
                ("confirm_password", "a brand new password"),
            ],
        )
        .await
    };
    for _ in 0..5 {
        assert_form_error(
            change("guess guess").await,
            "That is not your current password",
        )
        .await;
    }
    assert_locked(change("tap dancing shoes").await, 15 * 60).await;
}

async fn a_typed_name_never_lands_on_an_accounts_counter(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Off).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let id = app
        .scalar("SELECT id FROM users WHERE username = 'fred'")
        .await;
    for _ in 0..5 {
        assert_form_error(
            app.login_with_password(&format!("#{id}"), "wrong guess!")
                .await,
            "do not match",
        )
        .await;
    }
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
}

async fn known_and_unknown_names_are_counted_alike(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::AfterFailures).await else {
        return;
    };
    app.create_user("kate", "kate@example.org", "tap dancing shoes", false)
        .await;
    // Three failures each, then the name spelt with a KELVIN SIGN: the same
    // answer whether or not the account exists (nothing to enumerate).
    let mut asked = Vec::new();
    for email in ["kate@example.org", "kim@example.org"] {
        for _ in 0..3 {
            app.login_with_password(email, "wrong guess!").await;
        }
        let lookalike = email.replacen('k', "\u{212a}", 1);
        let html = assert_form_error(
            app.login_with_password(&lookalike, "wrong guess!").await,
            "do not match",
        )
        .await;
        asked.push(html.contains("What is "));
    }
    assert_eq!(asked[0], asked[1], "known and unknown names look alike");
}

async fn a_burst_at_one_account_brings_the_captcha(backend: Backend) {
    let Some(app) = app_for_bursts(backend, CaptchaMode::AfterFailures).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let forms: Vec<Vec<(&str, &str)>> = (0..30)
        .map(|_| vec![("username", "fred"), ("password", "wrong guess!")])
        .collect();
    let responses = post_at_once(&app, "/accounts/login", &forms).await;
    let judged = responses
        .iter()
        .filter(|r| r.text.contains("do not match"))
        .count();
    let asked = responses
        .iter()
        .filter(|r| r.text.contains("Answer this question"))
        .count();
    eprintln!("30 simultaneous wrong passwords, captcha after 3: {judged} judged, {asked} asked");
    assert!(judged <= 3, "{judged} judged before the question");
    assert!(asked > 0);
}

async fn a_copied_cookie_cannot_try_every_captcha_answer(backend: Backend) {
    let Some(app) = app_with_captcha(backend, CaptchaMode::Always).await else {
        return;
    };
    let right: u32 = answer(&app.get_html("/accounts/login").await)
        .parse()
        .expect("number");
    let (cookies, token) = cookies_and_token(&app).await;
    let address = app.address.trim_start_matches("http://");
    // A wrong answer first, then every answer (the right one among them)
    // with the same copied cookie: the question was spent by the first.
    let wrong_first = if right == 18 { 4 } else { right + 1 };
    for guess in std::iter::once(wrong_first).chain(4..=18) {
        let request = RawRequest::form(
            address,
            "/accounts/login",
            &cookies,
            &[
                ("username", "fred"),
                ("password", "wrong!"),
                ("captcha", &guess.to_string()),
                ("csrf_token", &token),
            ],
        );
        let response = burst::at_once(address, vec![request]).await.remove(0);
        assert_eq!(response.status, 422);
        assert!(
            response.text.contains("That answer was not right"),
            "answer {guess} was judged"
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE outcome <> 'unanswered'")
            .await,
        0
    );
}

async fn ipv6_neighbours_share_one_address_count(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.security.captcha = CaptchaMode::Off;
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await
    else {
        return;
    };
    let token = app.csrf_token().await;
    let mut last = None;
    for n in 1..=21 {
        let response = app
            .client
            .post(app.url("/accounts/login/code"))
            .header("X-Forwarded-For", format!("2001:db8:1:2::{n:x}"))
            .form(&[("code", "ABCDEF234"), ("csrf_token", &token)])
            .send()
            .await
            .expect("POST");
        last = Some(response.status());
    }
    assert_eq!(
        last,
        Some(StatusCode::TOO_MANY_REQUESTS),
        "the 21st guess from one /64"
    );
}

async fn a_login_link_leaves_no_code_in_a_session_row(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("ginger@example.org", "Ginger Rogers").await;
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
    app.get(&format!("/accounts/login?code={code}")).await;
    assert!(!app.database_dump().await.contains(&code));
    // A HEAD (a link previewer) sets nothing.
    let stranger = app.new_browser();
    let response = stranger
        .client
        .head(app.url(&format!("/accounts/login?code={code}")))
        .send()
        .await
        .expect("HEAD");
    assert!(response.headers().get_all("set-cookie").iter().all(|c| {
        !c.to_str()
            .unwrap_or_default()
            .starts_with("gatehouse_session")
    }));
}

backend_tests!(
    a_typed_name_never_lands_on_an_accounts_counter,
    known_and_unknown_names_are_counted_alike,
    a_burst_at_one_account_brings_the_captcha,
    a_copied_cookie_cannot_try_every_captcha_answer,
    ipv6_neighbours_share_one_address_count,
    a_login_link_leaves_no_code_in_a_session_row,
    an_account_is_locked_after_five_failures_in_the_window,
    an_address_is_locked_after_twenty_failures,
    a_success_clears_the_accounts_counter,
    code_guesses_from_one_address_are_capped_per_hour,
    the_captcha_is_asked_after_failures_and_each_answer_works_once,
    with_captcha_always_the_login_page_asks_at_once,
    one_address_gets_480_code_guesses_a_day_at_the_defaults,
    simultaneous_wrong_passwords_for_one_account_are_judged_exactly_five_times,
    simultaneous_code_guesses_from_one_address_are_judged_exactly_twenty_times,
    simultaneous_reset_requests_are_capped_at_exactly_five,
    every_spelling_of_an_account_shares_one_counter,
    a_success_marks_its_own_row_and_later_failures_count_afresh,
    the_login_page_asks_the_captcha_before_it_is_demanded,
    an_account_gets_the_question_after_three_failures_below_the_address_threshold,
    a_captcha_answer_cannot_be_replayed_from_an_old_cookie,
    anonymous_visitors_write_no_session_rows,
    the_current_password_meets_the_login_limits,
);
