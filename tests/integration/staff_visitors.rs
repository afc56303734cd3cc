//! Staff make visitor links in the browser (`/staff/visitors/new`), and
//! deactivate several at once; every change is in the audit log.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{Backend, assert_redirects_to, spawn_app, unescape};

/// The path and query of a full link in a page or a mail.
fn path_of(link: &str) -> String {
    let start = link.find("/visitors/demo?").expect("a demo link");
    link[start..]
        .split(|c: char| c.is_whitespace() || c == '<' || c == '"')
        .next()
        .expect("the link")
        .to_owned()
}

async fn staff_make_a_visitor_link_shown_once_and_mailed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.staff_login().await;
    let form = unescape(&app.get_html("/staff/visitors/new").await);
    assert!(
        form.contains("<option value=\"demo\">"),
        "the demo scope is offered"
    );

    // Mistakes come back listed at the top, with what was typed.
    let response = app
        .post_form(
            "/staff/visitors/new",
            &[
                ("scope", "Not A Scope"),
                ("email", "not-an-address"),
                ("first_name", "Ginger"),
                ("link_days", "0"),
                ("session_secs", "3600"),
                ("context", "Company: Acme\nno colon"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = unescape(&response.text().await.expect("body"));
    assert!(html.contains("<title>Error: New visitor link"));
    assert!(html.contains("There are 4 problems"), "{html}");
    for field in ["scope", "email", "link_days", "context"] {
        assert!(
            html.contains(&format!("<li><a href=\"#{field}\">")),
            "{field}"
        );
    }
    assert!(html.contains("value=\"Ginger\""));
    assert!(html.contains("Company: Acme\nno colon</textarea>"));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM visitors").await, 0);

    let response = app
        .post_form(
            "/staff/visitors/new",
            &[
                ("scope", "demo"),
                ("email", "ginger@example.org"),
                ("first_name", "Ginger"),
                ("last_name", "Rogers"),
                ("link_days", "5"),
                ("session_secs", "3600"),
                ("context", "Company: Acme\nreferred_by: Fred"),
                ("send_mail", "yes"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/staff/visitors/made");
    let html = unescape(&app.get_html("/staff/visitors/made").await);
    assert!(html.contains("Visitor link made for Ginger Rogers"));
    assert!(html.contains("data-copy=\"#visitor-link\""));
    let link = path_of(&html);
    let id = html
        .split("href=\"/staff/visitors/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the visitor")
        .to_owned();
    // Shown once: the next look goes back to the list.
    let again = app.get("/staff/visitors/made").await;
    assert_redirects_to(&again, "/staff/visitors");

    // The mail carries the same link, and the link lets Ginger in.
    let mail = app.smtp.wait_for(1).await[0].parsed();
    assert_eq!(mail.subject, "Your visitor link to Gatehouse");
    assert_eq!(path_of(&mail.text), link);
    let ginger = app.new_browser();
    ginger.follow_link(&link).await;
    assert!(ginger.get_html("/visitors/demo").await.contains("Ginger"));

    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitors WHERE id = '{id}' AND session_expiry_secs = 3600 \
             AND expires_at > {} AND expires_at < {}",
            app.days_ago(-4),
            app.days_ago(-6)
        ))
        .await,
        1
    );
    let detail = unescape(&app.get_html(&format!("/staff/visitors/{id}")).await);
    assert!(detail.contains("<dt>Company</dt><dd>Acme</dd>"), "{detail}");
    assert!(detail.contains("<dt>Referred by</dt><dd>Fred</dd>"));
    assert!(detail.contains("<dd>An hour</dd>"));
    assert!(!detail.contains("Public id"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'visitor.created' AND subject = 'Ginger Rogers'")
            .await,
        1
    );
}

async fn staff_deactivate_several_links_after_confirming(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (ann, ann_token) = app.visitor("demo", "ann@example.org", "Ann").await;
    let (bob, _) = app.visitor("demo", "bob@example.org", "Bob").await;
    let (cat, _) = app.visitor("demo", "cat@example.org", "Cat").await;
    app.staff_login().await;
    let list = unescape(&app.get_html("/staff/visitors").await);
    assert!(list.contains("aria-label=\"Select Ann\""));

    let response = app
        .post_form("/staff/visitors/deactivate", &[("id", &ann), ("id", &bob)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let question = unescape(&response.text().await.expect("body"));
    assert!(question.contains("Deactivate 2 visitor links?"));
    assert!(question.contains("<strong>Ann</strong>") && question.contains("<strong>Bob</strong>"));
    assert!(!question.contains("<strong>Cat</strong>"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM visitors WHERE is_active = false")
            .await,
        0,
        "nothing happens before the confirmation"
    );

    let response = app
        .post_form(
            "/staff/visitors/deactivate",
            &[("id", &ann), ("id", &bob), ("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/staff/visitors");
    assert!(
        app.get_html("/staff/visitors")
            .await
            .contains("2 visitor links have been deactivated.")
    );
    let inactive = |id: String| {
        let app = &app;
        async move {
            app.scalar(&format!(
                "SELECT COUNT(*) FROM visitors WHERE id = '{id}' AND is_active = false"
            ))
            .await
        }
    };
    assert_eq!(inactive(ann.clone()).await, 1);
    assert_eq!(inactive(bob).await, 1);
    let detail = app.get_html(&format!("/staff/visitors/{ann}")).await;
    assert!(
        detail.contains("<dt>Switched off</dt>") && detail.contains(": deactivated by staff</dd>"),
        "{detail}"
    );
    // Ann's link now says who switched it off, and when.
    let ann_link = format!("/visitors/demo?vid={ann_token}");
    let today = app
        .state
        .zone()
        .format(chrono::Utc::now(), gatehouse::dates::DateStyle::DayShort);
    let dead = app.new_browser().get(&ann_link).await;
    assert_eq!(dead.status(), StatusCode::FORBIDDEN);
    let dead = dead.text().await.expect("body");
    assert!(
        dead.contains(&format!(
            "This link was switched off by the staff of this site on {today}."
        )),
        "{dead}"
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitors WHERE id = '{ann}' AND ended_reason = 'deactivated' \
             AND ended_at IS NOT NULL"
        ))
        .await,
        1
    );
    assert_eq!(inactive(cat.clone()).await, 0);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'visitor.deactivated'")
            .await,
        2
    );

    // Nothing ticked: a message, no change. A stranger's id is ignored.
    let response = app.post_form("/staff/visitors/deactivate", &[]).await;
    assert_redirects_to(&response, "/staff/visitors");
    let response = app
        .post_form(
            "/staff/visitors/deactivate",
            &[("id", "no-such-visitor"), ("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/staff/visitors");
    assert_eq!(inactive(cat).await, 0);

    // Reactivating is recorded too, and the audit page names it.
    app.post_form(&format!("/staff/visitors/{ann}/reactivate"), &[])
        .await;
    assert_eq!(inactive(ann.clone()).await, 0);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM visitors WHERE id = '{ann}' AND ended_reason IS NULL \
             AND ended_at IS NULL"
        ))
        .await,
        1,
        "reactivation clears why it ended"
    );
    let again = app.new_browser().get_html(&ann_link).await;
    assert!(
        !again.contains("link-state") && again.contains("Continue"),
        "{again}"
    );
    let audit = app.get_html("/staff/audit").await;
    assert!(audit.contains("Visitor link reactivated"));
    assert!(audit.contains("Visitor link deactivated"));
}

backend_tests!(
    staff_make_a_visitor_link_shown_once_and_mailed,
    staff_deactivate_several_links_after_confirming
);
