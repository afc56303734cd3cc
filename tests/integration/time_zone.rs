//! `server.time_zone`: every date people see — staff pages, mail, a
//! visitor's pages, the dashboard's days — is in the site's zone, with its
//! abbreviation. (A bad zone refusing to start: `cli.rs`; formatting across
//! clock changes: the unit tests of `dates`.)

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Europe::Berlin;

use crate::backend_tests;
use crate::helpers::{Backend, assert_redirects_to, spawn_app_with, unescape};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid time")
}

/// `at` as the mail says it, worked out here with chrono-tz directly.
fn in_berlin(at: DateTime<Utc>) -> String {
    at.with_timezone(&Berlin)
        .format("%-d %B %Y, %H:%M %Z")
        .to_string()
}

async fn dates_are_shown_in_the_sites_zone(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| {
        settings.server.time_zone = "Europe/Berlin".parse().expect("a known zone");
        settings.security.captcha = gatehouse::settings::CaptchaMode::Off;
    })
    .await
    else {
        return;
    };
    app.staff_login().await;
    let before = Utc::now();
    let response = app
        .post_form(
            "/staff/visitors/new",
            &[
                ("send_mail", "yes"),
                ("first_name", "Ginger"),
                ("email", "ginger@example.org"),
                ("scope", "demo"),
                ("session_secs", "0"),
                ("link_days", "5"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/staff/visitors/made");
    let after = Utc::now();

    // The mail (through the real SMTP sink) says until when, in Berlin time.
    let mail = app.smtp.wait_for(1).await[0].parsed();
    let until = [before, after].map(|at| in_berlin(at + Duration::days(5)));
    assert!(
        until
            .iter()
            .any(|until| mail.text.contains(&format!("works until {until}"))),
        "{until:?} in {}",
        mail.text
    );
    assert!(until[0].ends_with(" CET"), "December is winter time");
    let start = mail.text.find("/visitors/demo?").expect("a link");
    let link: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();

    // Fixed times from here on: one in winter, one in summer.
    let id = app.scalar_text("SELECT id FROM visitors").await;
    app.execute(&format!(
        "UPDATE visitors SET created_at = {}, expires_at = {} WHERE id = '{id}'",
        app.timestamp(utc(2026, 7, 1, 10, 0)),
        app.timestamp(utc(2030, 11, 23, 16, 5)),
    ))
    .await;
    let detail = unescape(&app.get_html(&format!("/staff/visitors/{id}")).await);
    assert!(
        detail.contains("<dd>2026-07-01 12:00 CEST</dd>"),
        "{detail}"
    );
    assert!(detail.contains("<dd>2030-11-23 17:05 CET</dd>"), "{detail}");
    let list = app.get_html("/staff/visitors").await;
    assert!(list.contains("2030-11-23 17:05 CET"));

    // The visitor's own pages.
    let ginger = app.new_browser();
    let landing = ginger.get_html(&link).await;
    assert!(
        landing.contains("It works until 23 November 2030, 17:05 CET."),
        "{landing}"
    );
    ginger.follow_link(&link).await;
    let home = ginger.get_html("/").await;
    assert!(
        home.contains("<dd>23 November 2030, 17:05 CET</dd>"),
        "{home}"
    );

    // Staff's invitation list, and the dashboard's days.
    app.send_invite("fred@example.org", "Fred Astaire", "")
        .await;
    app.execute(&format!(
        "UPDATE invites SET created_at = {}",
        app.timestamp(utc(2026, 12, 31, 23, 30)),
    ))
    .await;
    let invites = app.get_html("/staff/invites").await;
    assert!(invites.contains("2027-01-01 00:30 CET"), "{invites}");
    let dashboard = unescape(&app.get_html("/staff").await);
    assert!(dashboard.contains("midnight to midnight Europe/Berlin time (CET"));
    assert!(dashboard.contains("Day (Europe/Berlin)"));

    // A message: the lockout says until when, on the site's clock.
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    let fred = app.new_browser();
    for _ in 0..5 {
        fred.get("/accounts/login").await;
        fred.login_with_password("fred", "wrong password").await;
    }
    fred.get("/accounts/login").await;
    let locked = fred.login_with_password("fred", "wrong password").await;
    assert_eq!(locked.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let locked = locked.text().await.expect("body");
    let lifts = in_berlin(Utc::now() + Duration::minutes(15));
    let clock = lifts.split(", ").nth(1).expect("a time");
    assert!(
        locked.contains(&format!("(after {clock}).")) || locked.contains(" CET)."),
        "{locked}"
    );
    assert!(
        locked.contains(" CET).") && !locked.contains("UTC"),
        "{locked}"
    );
}

backend_tests!(dates_are_shown_in_the_sites_zone);
