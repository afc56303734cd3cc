//! Reference requests end to end: Fred asks Ginger (no account); Ginger
//! answers through her visitor link in three steps; Fred reads it.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_form_error, assert_redirects_to, spawn_app, spawn_app_with, unescape,
};

/// Fred, logged in in the app's own browser.
async fn fred(app: &TestApp) {
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    assert_redirects_to(
        &app.login_with_password("fred", "tap dancing shoes").await,
        "/",
    );
}

async fn ask(app: &TestApp, name: &str, email: &str) -> reqwest::Response {
    app.post_form(
        "/references/request",
        &[
            ("name", name),
            ("email", email),
            ("message", "Could you write me a reference for the club?"),
        ],
    )
    .await
}

/// The link path in the newest mail to `to`, waiting for `count` mails.
async fn link_for(app: &TestApp, count: usize, to: &str) -> String {
    let messages = app.smtp.wait_for(count).await;
    let mail = messages
        .iter()
        .rev()
        .map(|m| m.parsed())
        .find(|m| m.to == to)
        .unwrap_or_else(|| panic!("no mail to {to}"));
    let start = mail
        .text
        .find("/references/respond?vid=")
        .expect("a respond link");
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

async fn the_whole_request_and_answer_flow_works(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    assert!(
        app.get_html("/references")
            .await
            .contains("You have not asked anyone yet")
    );
    assert_redirects_to(
        &ask(&app, "Ginger Rogers", "ginger@example.org").await,
        "/references",
    );
    let list = app.get_html("/references").await;
    assert!(list.contains("Your request has been sent to Ginger Rogers."));
    assert!(list.contains("badge-requested"));
    let mail = app.smtp.wait_for(1).await[0].parsed();
    assert_eq!(mail.subject, "fred asks you for a reference");
    assert!(
        mail.text
            .contains("Could you write me a reference for the club?")
    );
    let link = link_for(&app, 1, "ginger@example.org").await;

    // Ginger, in her own browser.
    let ginger = app.new_browser();
    assert_redirects_to(&ginger.follow_link(&link).await, "/references/respond");
    assert_redirects_to(
        &ginger.get("/references/respond").await,
        "/references/respond/relationship",
    );
    assert!(app.get_html("/references").await.contains("badge-opened"));
    // No skipping ahead by typing a URL.
    assert_redirects_to(
        &ginger.get("/references/respond/confirm").await,
        "/references/respond/relationship",
    );
    assert_redirects_to(
        &ginger
            .post_form(
                "/references/respond/reference",
                &[
                    ("reference", "x".repeat(30).as_str()),
                    ("recommendation", "yes"),
                ],
            )
            .await,
        "/references/respond/relationship",
    );
    // Step 1, with a mistake kept as typed.
    let html = assert_form_error(
        ginger
            .post_form(
                "/references/respond/relationship",
                &[("relationship", "Dance partner"), ("years_known", "many")],
            )
            .await,
        "Enter a number of years from 0 to 100.",
    )
    .await;
    assert!(html.contains("value=\"Dance partner\"") && html.contains("value=\"many\""));
    assert_redirects_to(
        &ginger
            .post_form(
                "/references/respond/relationship",
                &[("relationship", "Dance partner"), ("years_known", "10")],
            )
            .await,
        "/references/respond/reference",
    );
    // Back to step 1 (the browser's back button): the answers are there.
    let back = ginger.get_html("/references/respond/relationship").await;
    assert!(back.contains("value=\"Dance partner\"") && back.contains("value=\"10\""));
    // Step 2.
    assert_form_error(
        ginger
            .post_form(
                "/references/respond/reference",
                &[("reference", "Too short"), ("recommendation", "maybe")],
            )
            .await,
        "Write at least a couple of sentences",
    )
    .await;
    let text = "Fred leads with great care.\nHe never misses a practice.";
    assert_redirects_to(
        &ginger
            .post_form(
                "/references/respond/reference",
                &[("reference", text), ("recommendation", "strongly")],
            )
            .await,
        "/references/respond/confirm",
    );
    let review = ginger.get_html("/references/respond/confirm").await;
    assert!(review.contains("Fred leads with great care.<br>He never misses a practice."));
    assert!(review.contains("I recommend them strongly"));
    assert_redirects_to(
        &ginger.post_form("/references/respond/confirm", &[]).await,
        "/references/thanks",
    );
    assert!(
        ginger
            .get_html("/references/thanks")
            .await
            .contains("Your reference has been sent.")
    );

    // Her access has ended; the link no longer works. A step opened again
    // (Back in the browser) says why.
    let step = ginger.get("/references/respond/relationship").await;
    assert_eq!(step.status(), StatusCode::FORBIDDEN);
    assert!(
        step.text()
            .await
            .expect("body")
            .contains("You already sent this reference on ")
    );
    // Opening the mailed link again says exactly what happened, not a bare 403.
    let again = ginger.get(&link).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    let again = again.text().await.expect("body");
    let today = app
        .state
        .zone()
        .format(chrono::Utc::now(), gatehouse::dates::DateStyle::DayShort);
    assert!(
        again.contains(&format!(
            "You already sent this reference on {today} — thank you."
        )),
        "{again}"
    );
    assert!(again.contains("<h1>Reference sent</h1>") && !again.contains("error-code"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM visitors WHERE is_active = true")
            .await,
        0
    );

    // Fred is told, and reads it.
    let told = link_for_completed(&app).await;
    let id = app.scalar("SELECT id FROM reference_requests").await;
    assert!(told.ends_with(&format!("/references/{id}")), "{told}");
    let page = app.get_html(&format!("/references/{id}")).await;
    assert!(page.contains("Fred leads with great care.<br>He never misses a practice."));
    assert!(page.contains("Dance partner") && page.contains("10 years"));
    assert!(
        app.get_html("/references")
            .await
            .contains("badge-completed")
    );
}

async fn link_for_completed(app: &TestApp) -> String {
    let messages = app.smtp.wait_for(2).await;
    let mail = messages.last().expect("a mail").parsed();
    assert_eq!(mail.to, "fred@example.org");
    assert_eq!(mail.subject, "Ginger Rogers has written your reference");
    let start = mail.text.find("http").expect("a link");
    mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

async fn requests_are_validated_and_limited_per_day(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.references.max_requests_per_day = 2
    })
    .await
    else {
        return;
    };
    fred(&app).await;
    let html = assert_form_error(
        ask(&app, "Me Myself", "FRED@example.org").await,
        "You cannot ask yourself",
    )
    .await;
    assert!(html.contains("value=\"Me Myself\""));
    let html = assert_form_error(
        ask(&app, "Ginger", "not-an-address").await,
        "Enter a valid e-mail address",
    )
    .await;
    assert!(html.contains("value=\"not-an-address\""));
    assert_form_error(
        app.post_form(
            "/references/request",
            &[("name", ""), ("email", "a@example.org"), ("message", "")],
        )
        .await,
        "Enter the name of the person you are asking.",
    )
    .await;
    assert_redirects_to(
        &ask(&app, "Ginger", "ginger@example.org").await,
        "/references",
    );
    assert_redirects_to(&ask(&app, "Cyd", "cyd@example.org").await, "/references");
    assert_form_error(
        ask(&app, "Rita", "rita@example.org").await,
        "You can send 2 reference requests a day",
    )
    .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM reference_requests").await,
        2
    );
}

async fn send_again_counts_against_the_daily_limit(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.references.max_requests_per_day = 3
    })
    .await
    else {
        return;
    };
    fred(&app).await;
    assert_redirects_to(
        &ask(&app, "Ginger", "ginger@example.org").await,
        "/references",
    );
    let id = app.scalar("SELECT id FROM reference_requests").await;
    let send_again = format!("/references/{id}/send-again");
    for _ in 0..2 {
        assert_redirects_to(
            &app.post_form(&send_again, &[("confirm", "yes")]).await,
            "/references",
        );
    }
    // The fourth mail of the day is refused, with a message on the list.
    assert_redirects_to(
        &app.post_form(&send_again, &[("confirm", "yes")]).await,
        "/references",
    );
    assert!(
        app.get_html("/references")
            .await
            .contains("You can send 3 reference requests a day")
    );
    link_for(&app, 3, "ginger@example.org").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.smtp.messages().len(), 3, "no fourth mail");
    assert_form_error(
        ask(&app, "Cyd", "cyd@example.org").await,
        "You can send 3 reference requests a day",
    )
    .await;
}

async fn simultaneous_send_again_presses_stay_within_the_daily_limit(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.references.max_requests_per_day = 5;
        settings.server.workers = 2;
    })
    .await
    else {
        return;
    };
    fred(&app).await;
    ask(&app, "Ginger", "ginger@example.org").await;
    let id = app.scalar("SELECT id FROM reference_requests").await;
    let forms: Vec<Vec<(&str, &str)>> = (0..15).map(|_| vec![("confirm", "yes")]).collect();
    let responses =
        crate::security::post_at_once(&app, &format!("/references/{id}/send-again"), &forms).await;
    assert!(
        responses.iter().all(|r| r.status == 303),
        "each press answers with the list"
    );
    let mails = app.scalar("SELECT COUNT(*) FROM mail_outbox").await;
    eprintln!(
        "15 simultaneous send-again presses: {} mails queued in all (limit 5)",
        mails
    );
    assert_eq!(mails, 5, "one request + four sent again");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM login_attempts WHERE kind = 'reference'")
            .await,
        5
    );
}

async fn only_the_right_visitor_gets_into_the_flow(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Anonymous.
    assert_eq!(
        app.get("/references/respond/relationship").await.status(),
        StatusCode::FORBIDDEN
    );
    // A logged-in member without the pass (bypass: nobody).
    fred(&app).await;
    assert_eq!(
        app.get("/references/respond").await.status(),
        StatusCode::FORBIDDEN
    );
    // A visitor of another scope.
    let (_, token) = app.visitor("demo", "demo@example.org", "Demo").await;
    let other = app.new_browser();
    other.follow_link(&format!("/?vid={token}")).await;
    let response = other.get("/references/respond/relationship").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Members pages are for members.
    let response = other.get("/references").await;
    assert_eq!(response.status(), StatusCode::FOUND);
}

async fn two_referees_do_not_see_each_others_drafts(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    ask(&app, "Ginger Rogers", "ginger@example.org").await;
    ask(&app, "Cyd Charisse", "cyd@example.org").await;
    let ginger_link = link_for(&app, 2, "ginger@example.org").await;
    let cyd_link = link_for(&app, 2, "cyd@example.org").await;
    let ginger = app.new_browser();
    let cyd = app.new_browser();
    ginger.follow_link(&ginger_link).await;
    cyd.follow_link(&cyd_link).await;
    ginger
        .post_form(
            "/references/respond/relationship",
            &[
                ("relationship", "Ginger's secret answer"),
                ("years_known", "3"),
            ],
        )
        .await;
    let cyds = cyd.get_html("/references/respond/relationship").await;
    assert!(!cyds.contains("Ginger&#x27;s secret answer") && !cyds.contains("secret answer"));
    assert!(
        ginger
            .get_html("/references/respond/relationship")
            .await
            .contains("secret answer")
    );
}

async fn cancel_and_send_again_kill_the_old_link(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    ask(&app, "Ginger Rogers", "ginger@example.org").await;
    let first = link_for(&app, 1, "ginger@example.org").await;
    let id = app.scalar("SELECT id FROM reference_requests").await;

    assert_redirects_to(
        &app.post_form(
            &format!("/references/{id}/send-again"),
            &[("confirm", "yes")],
        )
        .await,
        "/references",
    );
    let second = link_for(&app, 2, "ginger@example.org").await;
    assert_ne!(first, second);
    let ginger = app.new_browser();
    assert!(
        ginger
            .get_html(&first)
            .await
            .contains("A newer link was sent to you — use the latest e-mail.")
    );
    assert_redirects_to(&ginger.follow_link(&second).await, "/references/respond");

    assert_redirects_to(
        &app.post_form(&format!("/references/{id}/cancel"), &[("confirm", "yes")])
            .await,
        "/references",
    );
    assert!(
        app.get_html("/references")
            .await
            .contains("badge-cancelled")
    );
    assert_eq!(
        ginger
            .get("/references/respond/relationship")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        ginger
            .get_html(&second)
            .await
            .contains("The reference request was withdrawn on ")
    );
}

async fn a_reference_is_visible_to_its_requester_and_staff_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    ask(&app, "Ginger Rogers", "ginger@example.org").await;
    let id = app.scalar("SELECT id FROM reference_requests").await;
    assert_eq!(
        app.get(&format!("/references/{id}")).await.status(),
        StatusCode::OK
    );

    app.create_user("rita", "rita@example.org", "tap dancing shoes", false)
        .await;
    let rita = app.new_browser();
    rita.login_with_password("rita", "tap dancing shoes").await;
    for path in [
        format!("/references/{id}"),
        "/references/999".into(),
        "/references/abc".into(),
    ] {
        assert_eq!(
            rita.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        rita.post_form(&format!("/references/{id}/cancel"), &[("confirm", "yes")])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let staff = app.new_browser();
    app.create_user("boss", "boss@example.org", "tap dancing shoes", true)
        .await;
    staff.login_with_password("boss", "tap dancing shoes").await;
    assert_eq!(
        staff.get(&format!("/references/{id}")).await.status(),
        StatusCode::OK
    );
    let anonymous = app.new_browser();
    assert_eq!(
        anonymous.get(&format!("/references/{id}")).await.status(),
        StatusCode::FOUND
    );
}

async fn expired_requests_show_expired_and_purge_erases_the_referee(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fred(&app).await;
    ask(&app, "Ginger Rogers", "ginger@example.org").await;
    app.execute(&format!(
        "UPDATE reference_requests SET link_expires_at = {}",
        app.days_ago(1)
    ))
    .await;
    assert!(app.get_html("/references").await.contains("badge-expired"));
    let report = gatehouse::purge::purge(app.db(), &app.state.settings, false)
        .await
        .expect("purge");
    assert_eq!(
        report.references_erased, 0,
        "within retention nothing is erased"
    );
    app.execute(&format!(
        "UPDATE reference_requests SET link_expires_at = {}",
        app.days_ago(91)
    ))
    .await;
    let report = gatehouse::purge::purge(app.db(), &app.state.settings, false)
        .await
        .expect("purge");
    assert_eq!(report.references_erased, 1);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM reference_requests WHERE referee_email = '' AND referee_name = '' AND message = ''").await,
        1
    );
}

backend_tests!(
    send_again_counts_against_the_daily_limit,
    simultaneous_send_again_presses_stay_within_the_daily_limit,
    the_whole_request_and_answer_flow_works,
    requests_are_validated_and_limited_per_day,
    only_the_right_visitor_gets_into_the_flow,
    two_referees_do_not_see_each_others_drafts,
    cancel_and_send_again_kill_the_old_link,
    a_reference_is_visible_to_its_requester_and_staff_only,
    expired_requests_show_expired_and_purge_erases_the_referee,
);
