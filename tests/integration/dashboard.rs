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
        "invites-used-this-week",
        "invites-expiring",
        "mail-waiting",
        "mail-failed",
        "visitors-active",
        "visitors-shared",
        "references-open",
        "references-completed-this-month",
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
    app.invite("expiring@example.org", "Ex Piring").await;
    app.execute(&format!(
        "UPDATE invites SET created_at = {} WHERE email = 'expiring@example.org'",
        app.days_ago(12)
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

    // Visitors: one active (used from two sessions: shared?), one
    // deactivated, one expired.
    let (active, _) = app.visitor("demo", "active@example.org", "Act").await;
    for (session, when) in [("s1", 0), ("s1", 2), ("s2", 2), ("s2", 40)] {
        app.execute(&format!(
            "INSERT INTO visitor_logs (visitor_id, session_hash, http_method, request_path, \
             status_code, remote_addr, user_agent, referer, timestamp) VALUES ('{active}', \
             '{session}', 'GET', '/visitors/demo', 200, '192.0.2.1', 'test', '', {})",
            app.days_ago(when)
        ))
        .await;
    }
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
        let (opened, completed) = match status {
            "requested" => ("NULL".to_owned(), "NULL".to_owned()),
            "opened" => (app.days_ago(3), "NULL".to_owned()),
            _ => (app.days_ago(3), app.days_ago(0)),
        };
        app.execute(&format!(
            "INSERT INTO reference_requests (site_id, requester_id, referee_name, \
             referee_email, message, status, created_at, link_expires_at, opened_at, \
             completed_at) VALUES ({site}, \
             (SELECT id FROM users WHERE username = 'boss'), 'Ref Eree', \
             'referee@example.org', '', '{status}', {}, {expires}, {opened}, {completed})",
            app.days_ago(4)
        ))
        .await;
    }

    let html = app.get_html("/staff").await;
    assert_eq!(count(&html, "invites-pending"), 2);
    assert_eq!(count(&html, "invites-used-this-week"), 1);
    assert_eq!(count(&html, "invites-expiring"), 1);
    assert_eq!(count(&html, "visitors-shared"), 1);
    assert_eq!(count(&html, "references-completed-this-month"), 1);
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

    // The charts, each with its summary and its numbers as a table.
    for summary in [
        "In the last 30 days, 4 invitations were sent and 1 first used.",
        "In the last 30 days, 3 visits through visitor links of 1 scope.",
        "Of 4 reference requests made in the last 30 days, 3 were opened and 1 completed.",
        "Of the mail queued in the last 30 days, 1 delivered at once, 0 needed retrying and 1 failed.",
    ] {
        assert!(html.contains(summary), "{summary}");
    }
    assert_eq!(html.matches("<svg class=\"chart-drawing\"").count(), 4);
    assert_eq!(html.matches("<details class=\"chart-numbers\">").count(), 4);
    // Two visits today, one two days ago: the table's last rows.
    let visits = html
        .split("id=\"chart-visits\"")
        .nth(1)
        .expect("visits chart");
    assert!(visits.contains("<th scope=\"col\">demo</th>"));
    assert!(visits.contains("</th><td>1</td></tr>"));
}

/// The charts' days are whole UTC days, the same on both backends.
async fn the_charts_count_per_day(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.staff_login().await;
    for (n, days) in [0, 0, 1, 29, 30].into_iter().enumerate() {
        app.invite(&format!("person{n}@example.org"), "Some One")
            .await;
        app.execute(&format!(
            "UPDATE invites SET created_at = {} WHERE id = (SELECT MAX(id) FROM invites)",
            app.days_ago(days)
        ))
        .await;
    }
    let html = crate::helpers::unescape(&app.get_html("/staff").await);
    // 30 days ago is before midnight of the first day shown.
    assert!(html.contains("In the last 30 days, 4 invitations were sent and 0 first used."));
    let today = chrono::Utc::now().format("%-d %b").to_string();
    assert!(
        html.contains(&format!(
            "<th scope=\"row\">{today}</th><td>2</td><td>0</td>"
        )),
        "today's row"
    );
}

backend_tests!(
    only_staff_reach_the_staff_index,
    staff_see_the_sites_counts,
    the_charts_count_per_day
);
