//! `GET /staff`: the staff index's counts, and who may see it.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{Backend, assert_redirects_to, spawn_app};

async fn only_staff_reach_the_staff_index(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/staff").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_redirects_to(&response, "/accounts/login?next=%2Fstaff");

    let code = app.invite("member@example.org", "Mem Ber").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    let response = app.get("/staff").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("This page is for staff only")
    );
    assert!(!app.get_html("/").await.contains("href=\"/staff\""));
}

/// The number a count's row carries, from the page.
fn count(html: &str, id: &str) -> i64 {
    let row = html
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no row {id}"));
    let value = row
        .split("data-count=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("data-count");
    value.parse().expect("a number")
}

async fn staff_see_the_sites_counts(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.staff_login().await;
    let html = app.get_html("/staff").await;
    assert!(
        html.contains("aria-current=\"page\">Staff</a>"),
        "in the navigation"
    );
    for id in [
        "invites-pending",
        "invites-used-this-month",
        "mail-waiting",
        "mail-failed",
        "visitors-active",
        "references-open",
    ] {
        assert_eq!(count(&html, id), 0, "{id}");
    }
    assert!(html.contains("No invitation is waiting to be used."));
    assert!(html.contains("No mail has failed."));
    assert_eq!(count(&html, "members"), 1, "the staff member");

    // Invitations: one waiting, one used now (its member logs in), one used
    // last month, one revoked.
    app.invite("waiting@example.org", "Wai Ting").await;
    let used = app.invite("used@example.org", "Us Ed").await;
    assert_redirects_to(&app.new_browser().login_with_code(&used).await, "/");
    app.invite("old@example.org", "Ol D").await;
    app.execute(&format!(
        "UPDATE invites SET created_at = {}, first_used_at = {} WHERE email = 'old@example.org'",
        app.days_ago(45),
        app.days_ago(40)
    ))
    .await;
    app.invite("revoked@example.org", "Re Voked").await;
    app.execute(&format!(
        "UPDATE invites SET revoked_at = {} WHERE email = 'revoked@example.org'",
        app.days_ago(0)
    ))
    .await;
    // A member who left is not counted.
    app.create_user("gone", "gone@example.org", "a long gone password", false)
        .await;
    app.execute("UPDATE users SET is_active = false WHERE username = 'gone'")
        .await;

    // Mail: two waiting (not due, so the worker leaves them), one failed,
    // one sent.
    let site = "(SELECT site_id FROM users WHERE username = 'boss')";
    for (status, due) in [
        ("pending", app.days_ago(-1)),
        ("pending", app.days_ago(-1)),
        ("failed", app.days_ago(1)),
        ("sent", app.days_ago(1)),
    ] {
        app.execute(&format!(
            "INSERT INTO mail_outbox (site_id, sender, recipient, subject, status, attempts, \
             created_at, next_attempt_at) VALUES ({site}, 'site@example.org', \
             'someone@example.org', 'Hello', '{status}', 0, {}, {due})",
            app.days_ago(1)
        ))
        .await;
    }

    // Visitors: one active, one deactivated, one expired.
    app.visitor("demo", "active@example.org", "Act").await;
    let (deactivated, _) = app.visitor("demo", "off@example.org", "Off").await;
    app.execute(&format!(
        "UPDATE visitors SET is_active = false WHERE id = '{deactivated}'"
    ))
    .await;
    let (expired, _) = app.visitor("demo", "late@example.org", "Late").await;
    app.execute(&format!(
        "UPDATE visitors SET expires_at = {} WHERE id = '{expired}'",
        app.days_ago(1)
    ))
    .await;

    // Reference requests: one requested, one opened, one whose link
    // expired, one completed.
    for (status, expires) in [
        ("requested", app.days_ago(-3)),
        ("opened", app.days_ago(-3)),
        ("opened", app.days_ago(1)),
        ("completed", app.days_ago(-3)),
    ] {
        app.execute(&format!(
            "INSERT INTO reference_requests (site_id, requester_id, referee_name, \
             referee_email, message, status, created_at, link_expires_at) VALUES ({site}, \
             (SELECT id FROM users WHERE username = 'boss'), 'Ref Eree', \
             'referee@example.org', '', '{status}', {}, {expires})",
            app.days_ago(4)
        ))
        .await;
    }

    let html = app.get_html("/staff").await;
    assert_eq!(count(&html, "invites-pending"), 1);
    assert_eq!(count(&html, "invites-used-this-month"), 1);
    assert_eq!(count(&html, "mail-waiting"), 2);
    assert_eq!(count(&html, "mail-failed"), 1);
    assert_eq!(count(&html, "visitors-active"), 1);
    assert_eq!(count(&html, "references-open"), 2);
    assert_eq!(count(&html, "members"), 2, "staff and the code's member");
    let html = crate::helpers::unescape(&html);
    for link in [
        "/staff/invites?state=pending",
        "/staff/invites?state=used",
        "/staff/mail",
        "/staff/visitors?state=active",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
    }
    assert!(!html.contains("No mail has failed."));
}

backend_tests!(only_staff_reach_the_staff_index, staff_see_the_sites_counts);
