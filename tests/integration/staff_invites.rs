//! Staff sending invitations from the browser, the invitation list (states,
//! search, revoke, resend), code sessions ending, and the audit log.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_form_error, assert_redirects_to, code_in_mail, code_on_page,
    spawn_app, spawn_app_with, unescape,
};

/// An app with a staff member logged in on the app's own client.
async fn staff_app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.staff_login().await;
    Some(app)
}

async fn only_staff_reach_the_invitation_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let pages = [
        "/invites/send",
        "/staff/invites",
        "/staff/mail",
        "/staff/audit",
    ];
    for page in pages {
        let response = app.get(page).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{page}");
        assert_redirects_to(
            &response,
            &format!("/accounts/login?next={}", page.replace('/', "%2F")),
        );
    }
    // A member who is not staff gets the 403 page, for pages and actions.
    let code = app.invite("member@example.org", "Mem Ber").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    for page in pages {
        let response = app.get(page).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{page}");
        assert!(
            response
                .text()
                .await
                .expect("body")
                .contains("This page is for staff only")
        );
    }
    let invites_before = app.scalar("SELECT COUNT(*) FROM invites").await;
    for action in [
        "/invites/send",
        "/staff/invites/1/revoke",
        "/staff/invites/1/resend",
        "/staff/mail/1/retry",
    ] {
        let response = app
            .post_form(action, &[("email", "sneaky@example.org")])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites").await,
        invites_before
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
    assert!(
        !app.get_html("/").await.contains("href=\"/invites/send\""),
        "no staff links for members"
    );

    // Staff get the form, and the links in the navigation.
    let staff = app.new_browser();
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    staff
        .login_with_password("boss", "a long staff password")
        .await;
    let response = staff.get("/invites/send").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("body");
    for needle in [
        "id=\"send-invite\"",
        "name=\"email\"",
        "name=\"name\"",
        "name=\"phone\"",
        "name=\"csrf_token\"",
        "href=\"/staff/invites\"",
        // One "Staff" entry in the navigation, marked as the section here.
        "href=\"/staff\" aria-current=\"true\">Staff</a>",
    ] {
        assert!(html.contains(needle), "{needle} in:\n{html}");
    }
    // The staff index leads to every section.
    let index = staff.get_html("/staff").await;
    for section in [
        "/invites/send",
        "/staff/invites",
        "/staff/visitors",
        "/staff/visitors/new",
        "/staff/mail",
        "/staff/audit",
    ] {
        assert!(index.contains(&format!("href=\"{section}\"")), "{section}");
    }
}

async fn a_staff_member_sends_an_invitation_and_sees_the_code_once(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    let response = app
        .send_invite(" Fred@Example.org ", "Fred Astaire", "555-0199")
        .await;
    assert_redirects_to(&response, "/invites/sent");

    let response = app.get("/invites/sent").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let html = response.text().await.expect("body");
    let code = code_on_page(&html);
    assert!(
        gatehouse::invites::InviteCode::parse(&code).is_ok(),
        "{code}"
    );
    assert!(html.contains("<h1>Invitation sent</h1>"));
    assert!(html.contains("fred@example.org"));
    assert!(html.contains("queued"), "the page says the mail was queued");
    assert!(html.contains("shown only once"));
    assert!(html.contains("data-copy=\"#invite-code\""), "a copy button");
    assert!(html.contains("/static/copy."));

    // Shown once: a reload no longer has it.
    let again = app.get("/invites/sent").await;
    assert_redirects_to(&again, "/staff/invites");
    let list = app.get_html("/staff/invites").await;
    assert!(list.contains("shown only once"));
    assert!(!list.contains(&code));

    let mail = &app.smtp.wait_for(1).await[0];
    assert_eq!(mail.to, ["fred@example.org"]);
    assert_eq!(code_in_mail(&mail.parsed().text), code);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM invites i JOIN users u ON u.id = i.created_by \
             WHERE i.email = 'fred@example.org' AND i.name = 'Fred Astaire' \
             AND i.phone = '555-0199' AND u.username = 'boss'"
        )
        .await,
        1
    );
}

async fn the_form_comes_back_with_the_typed_values_and_a_message_per_field(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    let html = assert_form_error(
        app.send_invite("fred@", "Fred <b>Astaire</b>", "call me maybe")
            .await,
        "Enter a valid e-mail address, like name@example.org.",
    )
    .await;
    assert!(html.contains("value=\"fred@\""));
    assert!(html.contains("value=\"Fred &lt;b&gt;Astaire&lt;&#x2F;b&gt;\""));
    assert!(html.contains("value=\"call me maybe\""));
    assert!(html.contains("Enter a phone number with digits"));
    assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"email-error\""));

    let long_name = "n".repeat(151);
    let html = assert_form_error(
        app.send_invite("", &long_name, "").await,
        "Enter an e-mail address.",
    )
    .await;
    assert!(html.contains("The name can be 150 characters at most."));
    assert!(html.contains(&format!("value=\"{long_name}\"")));

    assert_eq!(app.scalar("SELECT COUNT(*) FROM invites").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM mail_outbox").await, 0);
}

async fn re_inviting_an_open_address_asks_before_replacing_the_code(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    let first = app
        .send_invite_and_read_code("ginger@example.org", "Ginger Rogers")
        .await;

    let response = app
        .send_invite("Ginger@example.org", "Ginger Rogers", "")
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let html = response.text().await.expect("body");
    assert!(html.contains("already has an open invitation"), "{html}");
    assert!(html.contains("Send a fresh code"));
    assert!(html.contains("name=\"replace\" value=\"yes\""));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM invites").await, 1);

    let response = app
        .post_form(
            "/invites/send",
            &[
                ("email", "ginger@example.org"),
                ("name", "Ginger Rogers"),
                ("phone", ""),
                ("replace", "yes"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/invites/sent");
    let second = code_on_page(&app.get_html("/invites/sent").await);
    assert_ne!(first, second);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE revoked_at IS NOT NULL")
            .await,
        1
    );

    let member = app.new_browser();
    assert_form_error(
        member.login_with_code(&first).await,
        "This code was replaced by a newer one: use the code in the latest invitation e-mail",
    )
    .await;
    assert_redirects_to(&member.login_with_code(&second).await, "/");
}

async fn the_invite_list_shows_each_state_and_searches_and_pages(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    app.send_invite_and_read_code("pending@example.org", "Penny Pending")
        .await;
    let used = app.invite("used@example.org", "Ursula Used").await;
    assert_redirects_to(&app.new_browser().login_with_code(&used).await, "/");
    app.invite("expired@example.org", "Ernest Expired").await;
    app.execute(&format!(
        "UPDATE invites SET created_at = {} WHERE email = 'expired@example.org'",
        app.days_ago(20)
    ))
    .await;
    app.invite("revoked@example.org", "Rita Revoked").await;
    app.execute(&format!(
        "UPDATE invites SET revoked_at = {} WHERE email = 'revoked@example.org'",
        app.days_ago(1)
    ))
    .await;
    app.eventually("SELECT COUNT(*) FROM invites WHERE sent_at IS NOT NULL", 1)
        .await;

    let html = app.get_html("/staff/invites").await;
    for (email, state) in [
        ("pending@example.org", "pending"),
        ("used@example.org", "used"),
        ("expired@example.org", "expired"),
        ("revoked@example.org", "revoked"),
    ] {
        let row = row_of(&html, email);
        assert!(
            row.contains(&format!("badge badge-{state}\">{state}")),
            "{email}: {row}"
        );
    }
    let pending = row_of(&html, "pending@example.org");
    assert!(pending.contains("boss"), "created by: {pending}");
    assert!(pending.contains("Revoke") && pending.contains("Resend"));
    assert!(
        !pending.contains("not yet"),
        "sent, once delivered: {pending}"
    );
    let used_row = row_of(&html, "used@example.org");
    assert!(used_row.contains("command line") && !used_row.contains("never"));
    assert!(
        used_row.contains("not e-mailed: the code was handed over"),
        "a command-line code was never meant to be mailed: {used_row}"
    );
    assert!(pending.contains("aria-label=\"Revoke the invitation for pending@example.org\""));
    assert!(!row_of(&html, "revoked@example.org").contains("Revoke…</button>"));

    let html = app.get_html("/staff/invites?q=URSULA").await;
    assert!(html.contains("used@example.org") && !html.contains("pending@example.org"));
    let html = app.get_html("/staff/invites?state=expired").await;
    assert!(html.contains("expired@example.org") && !html.contains("used@example.org"));
    let html = app.get_html("/staff/invites?q=%25").await;
    assert!(html.contains("No invitations match."), "% is literal");

    for n in 0..30 {
        app.invite(&format!("bulk{n:02}@example.org"), "Bulk").await;
    }
    let first_page = app.get_html("/staff/invites?q=bulk").await;
    assert_eq!(first_page.matches("<tr id=\"invite-").count(), 25);
    assert!(first_page.contains("Page 1 of 2 (1–25 of 30)"));
    assert!(unescape(&first_page).contains("href=\"/staff/invites?q=bulk&page=2\""));
    let second_page = app.get_html("/staff/invites?q=bulk&page=2").await;
    assert_eq!(second_page.matches("<tr id=\"invite-").count(), 5);
    assert_eq!(
        app.get("/staff/invites?page=nonsense&state=whatever")
            .await
            .status(),
        StatusCode::OK
    );
}

/// The table row of an e-mail address on the invitation list.
fn row_of<'a>(html: &'a str, email: &str) -> &'a str {
    let at = html
        .find(&format!("<td data-label=\"E-mail\">{email}</td>"))
        .unwrap_or_else(|| panic!("{email} is listed:\n{html}"));
    let start = html[..at].rfind("<tr").expect("row start");
    let end = at + html[at..].find("</tr>").expect("row end");
    &html[start..end]
}

fn invite_id(html: &str, email: &str) -> String {
    let row = row_of(html, email);
    let start = row.find("id=\"invite-").expect("row id") + "id=\"invite-".len();
    row[start..].split('"').next().expect("id").to_owned()
}

async fn revoking_refuses_the_code_and_ends_the_sessions_it_started(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    let code = app
        .send_invite_and_read_code("cyd@example.org", "Cyd Charisse")
        .await;
    let member = app.new_browser();
    assert_redirects_to(&member.login_with_code(&code).await, "/");
    assert_eq!(member.whoami().await.as_deref(), Some("cyd@example.org"));

    let list = app.get_html("/staff/invites?q=cyd").await;
    let id = invite_id(&list, "cyd@example.org");
    let response = app
        .post_form(
            &format!("/staff/invites/{id}/revoke"),
            &[("back", "/staff/invites?q=cyd")],
        )
        .await;
    // First the question, naming the person and what happens to them.
    assert_eq!(response.status(), StatusCode::OK);
    let question = response.text().await.expect("body");
    assert!(question.contains("Revoke the invitation for"), "{question}");
    assert!(question.contains("cyd@example.org"));
    assert!(question.contains("they are logged out"));
    assert_eq!(
        member.whoami().await.as_deref(),
        Some("cyd@example.org"),
        "nothing yet"
    );
    let response = app
        .post_form(
            &format!("/staff/invites/{id}/revoke"),
            &[("back", "/staff/invites?q=cyd"), ("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/staff/invites?q=cyd");
    let list = app.get_html("/staff/invites?q=cyd").await;
    assert!(list.contains("was revoked: its code no longer works"));
    assert!(row_of(&list, "cyd@example.org").contains("badge-revoked"));

    // The member's next request ends their session, with a message.
    let response = member.get("/accounts/password").await;
    assert_redirects_to(&response, "/accounts/login?next=%2Faccounts%2Fpassword");
    let login = member.get_html("/accounts/login").await;
    assert!(
        login.contains("The invitation code you logged in with has been withdrawn"),
        "{login}"
    );
    assert!(login.contains("ask the person who invited you for a new code"));
    assert_eq!(member.whoami().await, None);
    assert_form_error(
        member.login_with_code(&code).await,
        "This invitation was withdrawn",
    )
    .await;

    // Revoking twice says so, and an unknown invite is a 404.
    let response = app
        .post_form(
            &format!("/staff/invites/{id}/revoke"),
            &[("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/staff/invites");
    assert!(
        app.get_html("/staff/invites")
            .await
            .contains("was already revoked")
    );
    let response = app
        .post_form("/staff/invites/999999/revoke", &[("confirm", "yes")])
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .post_form("/staff/invites/nonsense/revoke", &[("confirm", "yes")])
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn resending_mails_a_fresh_code_and_the_old_one_stops_working(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    let old = app
        .send_invite_and_read_code("gene@example.org", "Gene Kelly")
        .await;
    app.smtp.wait_for(1).await;
    let list = app.get_html("/staff/invites").await;
    let id = invite_id(&list, "gene@example.org");

    let response = app
        .post_form(
            &format!("/staff/invites/{id}/resend"),
            &[("confirm", "yes")],
        )
        .await;
    assert_redirects_to(&response, "/invites/sent");
    let page = app.get_html("/invites/sent").await;
    assert!(page.contains("Invitation resent with a fresh code"));
    assert!(page.contains("The previous code no longer works."));
    let new = code_on_page(&page);
    assert_ne!(old, new);

    let mails = app.smtp.wait_for(2).await;
    let resent = mails[1].parsed();
    assert_eq!(code_in_mail(&resent.text), new);
    assert_eq!(mails[1].to, ["gene@example.org"]);
    assert_eq!(resent.subject, "Your new invitation code for Gatehouse");
    assert!(
        resent
            .text
            .contains("This code replaces the one we sent you before")
    );
    assert!(!mails[0].parsed().text.contains("replaces"));

    let member = app.new_browser();
    assert_form_error(
        member.login_with_code(&old).await,
        "replaced by a newer one",
    )
    .await;
    assert_redirects_to(&member.login_with_code(&new).await, "/");
    assert_eq!(member.whoami().await.as_deref(), Some("gene@example.org"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM invites WHERE email = 'gene@example.org' \
             AND name = 'Gene Kelly' AND revoked_at IS NULL"
        )
        .await,
        1
    );
}

async fn a_code_session_ends_when_the_code_expires(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("expiring@example.org", "Ex Piring").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    app.execute(&format!(
        "UPDATE invites SET first_used_at = {}",
        app.days_ago(29)
    ))
    .await;
    assert!(app.whoami().await.is_some(), "29 days: still valid");
    // 31 days on: the end the session was given at login (unix seconds in
    // its state) has passed.
    app.execute(
        "UPDATE sessions SET data = REPLACE(data, '\"auth.code_ends_at\":\"', \
         '\"auth.code_ends_at\":\"-') WHERE invite_id IS NOT NULL",
    )
    .await;
    assert_redirects_to(&app.get("/").await, "/accounts/login?next=%2F");
    let login = app.get_html("/accounts/login").await;
    assert!(login.contains("The invitation code you logged in with has expired"));
    assert_eq!(app.whoami().await, None);
}

async fn a_one_shot_code_session_lasts_until_the_invite_is_revoked(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |settings| settings.invites.expiry_days = 0).await
    else {
        return;
    };
    let code = app.invite("once@example.org", "Once Only").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    app.execute(&format!(
        "UPDATE invites SET first_used_at = {}",
        app.days_ago(60)
    ))
    .await;
    assert_eq!(app.whoami().await.as_deref(), Some("once@example.org"));
    let id = app
        .scalar("SELECT id FROM invites WHERE email = 'once@example.org'")
        .await;
    gatehouse::invites::manage::revoke(app.db(), id, chrono::Utc::now())
        .await
        .expect("revoked");
    assert_eq!(app.whoami().await, None);
}

async fn password_sessions_are_not_ended_by_revoking_the_invite(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let code = app.invite("careful@example.org", "Care Ful").await;
    assert_redirects_to(&app.login_with_code(&code).await, "/");
    let response = app
        .post_form(
            "/accounts/password",
            &[
                ("new_password", "a long new password"),
                ("confirm_password", "a long new password"),
            ],
        )
        .await;
    assert_redirects_to(&response, "/");
    app.execute(&format!(
        "UPDATE invites SET revoked_at = {}",
        app.days_ago(0)
    ))
    .await;
    assert_eq!(app.whoami().await.as_deref(), Some("careful@example.org"));
}

async fn staff_actions_are_written_to_the_audit_log(backend: Backend) {
    let Some(app) = staff_app(backend).await else {
        return;
    };
    app.send_invite_and_read_code("fred@example.org", "Fred Astaire")
        .await;
    app.smtp.wait_for(1).await;
    let list = app.get_html("/staff/invites").await;
    let id = invite_id(&list, "fred@example.org");
    app.post_form(
        &format!("/staff/invites/{id}/resend"),
        &[("confirm", "yes")],
    )
    .await;
    let list = app.get_html("/staff/invites").await;
    let new_id = invite_id(&list, "fred@example.org");
    app.post_form(
        &format!("/staff/invites/{new_id}/revoke"),
        &[("confirm", "yes")],
    )
    .await;

    for (action, count) in [
        ("invite.sent", 1),
        ("invite.resent", 1),
        ("invite.revoked", 2),
    ] {
        assert_eq!(
            app.scalar(&format!(
                "SELECT COUNT(*) FROM audit_log a JOIN users u ON u.id = a.actor_id \
                 WHERE a.action = '{action}' AND a.actor = 'boss' AND u.username = 'boss' \
                 AND a.subject = 'fred@example.org'"
            ))
            .await,
            count,
            "{action}"
        );
    }
    let html = app.get_html("/staff/audit").await;
    for label in [
        "Invitation sent",
        "Invitation resent with a fresh code",
        "Invitation revoked",
    ] {
        assert!(html.contains(label), "{label} in:\n{html}");
    }
    assert!(html.contains(&format!("replacing #{id}")));
}

async fn the_first_start_staff_code_is_audited_as_making_a_staff_member(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let staff = gatehouse::bootstrap::staff_code_if_needed(&app.state)
        .await
        .expect("bootstrap")
        .expect("a staff code");
    assert_redirects_to(&app.login_with_code(staff.code.as_str()).await, "/");
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_log a JOIN users u ON u.id = a.actor_id \
             WHERE a.action = 'user.made_staff' AND u.is_staff = true"
        )
        .await,
        1
    );
    let html = app.get_html("/staff/audit").await;
    assert!(html.contains("Made a staff member"));
    assert!(html.contains("first-start staff code"));
}

backend_tests!(
    only_staff_reach_the_invitation_pages,
    a_staff_member_sends_an_invitation_and_sees_the_code_once,
    the_form_comes_back_with_the_typed_values_and_a_message_per_field,
    re_inviting_an_open_address_asks_before_replacing_the_code,
    the_invite_list_shows_each_state_and_searches_and_pages,
    revoking_refuses_the_code_and_ends_the_sessions_it_started,
    resending_mails_a_fresh_code_and_the_old_one_stops_working,
    a_code_session_ends_when_the_code_expires,
    a_one_shot_code_session_lasts_until_the_invite_is_revoked,
    password_sessions_are_not_ended_by_revoking_the_invite,
    staff_actions_are_written_to_the_audit_log,
    the_first_start_staff_code_is_audited_as_making_a_staff_member,
);
