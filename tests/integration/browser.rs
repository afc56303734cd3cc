//! The login page in a real browser (headless Chromium via chromedriver):
//! what a person invited with a code actually does.

use crate::helpers::{Backend, spawn_app};
use crate::support::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_person_logs_in_with_the_code_sets_a_password_and_logs_in_again() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let code = app.invite("ginger@example.org", "Ginger Rogers").await;

    // The e-mailed link pre-fills the quick form; a person types nothing.
    browser
        .goto(&app.url(&format!("/accounts/login?code={}", code.to_lowercase())))
        .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users").await,
        0,
        "the link alone logs no one in"
    );
    // The stylesheet is applied (served by the site itself, allowed by the CSP).
    let colour = browser
        .script("return getComputedStyle(document.querySelector('#code-login .button')).backgroundColor")
        .await;
    assert_ne!(
        colour.as_str(),
        Some("rgba(0, 0, 0, 0)"),
        "buttons are styled"
    );
    browser.click("#code-login button[type=submit]").await;
    browser.wait_for_text("Hello, Ginger Rogers").await;
    browser.wait_for_text("Welcome to Gatehouse, Ginger!").await;
    assert_eq!(browser.current_url().await, app.url("/"));

    // Set a password, with one mistake on the way.
    browser.click("a[href='/accounts/password']").await;
    browser.fill("#new_password", "cheek to cheek 1935").await;
    browser
        .fill("#confirm_password", "cheek to cheek 1936")
        .await;
    browser.click("#password-form button[type=submit]").await;
    browser
        .wait_for_text("The two passwords do not match.")
        .await;
    browser.fill("#new_password", "cheek to cheek 1935").await;
    browser
        .fill("#confirm_password", "cheek to cheek 1935")
        .await;
    browser.click("#password-form button[type=submit]").await;
    browser.wait_for_text("Your password has been set.").await;

    // Log out, then in with the password form.
    browser
        .click("form[action='/accounts/logout'] button")
        .await;
    browser.wait_for_text("You have logged out").await;
    browser.goto(&app.url("/accounts/login")).await;
    browser.fill("#username", "Ginger@example.org").await;
    browser.fill("#password", "wrong password").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("do not match").await;
    assert_eq!(
        browser
            .script("return document.querySelector('#username').value")
            .await
            .as_str(),
        Some("Ginger@example.org"),
        "the typed username is kept"
    );
    browser.fill("#password", "cheek to cheek 1935").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("Welcome back, Ginger.").await;
    assert!(
        browser
            .source()
            .await
            .contains("Signed in as ginger@example.org")
    );
    browser.quit().await;
}

/// The core loop, as people do it: staff send an invite from the browser;
/// the mailed code logs the member in; the member asks Ginger for a
/// reference; Ginger's mailed link opens the respond flow, she goes back a
/// step on the way; the member reads the finished reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_invite_to_completed_reference_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let started = std::time::Instant::now();
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;

    // Staff send the invitation.
    browser.goto(&app.url("/accounts/login")).await;
    browser.fill("#username", "boss").await;
    browser.fill("#password", "a long staff password").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("Welcome back").await;
    // One "Staff" entry in the navigation leads to every staff section.
    browser.click("nav.site-nav a[href='/staff']").await;
    browser.click("a[href='/invites/send']").await;
    browser.fill("#email", "fred@example.org").await;
    browser.fill("#name", "Fred Astaire").await;
    browser.click("#send-invite button[type=submit]").await;
    browser.wait_for_text("Invitation sent").await;
    browser
        .click("form[action='/accounts/logout'] button")
        .await;
    browser.wait_for_text("You have logged out").await;

    // Fred follows the mailed login link: the code is filled in.
    let invitation = app.smtp.wait_for(1).await[0].parsed();
    let code = crate::helpers::code_in_mail(&invitation.text);
    let login_link = format!("/accounts/login?code={code}");
    assert!(invitation.text.contains(&login_link));
    browser.goto(&app.url(&login_link)).await;
    browser.click("#code-login button[type=submit]").await;
    browser.wait_for_text("Hello, Fred Astaire").await;

    // Fred asks Ginger.
    browser.click("a[href='/references']").await;
    browser.click("a[href='/references/request']").await;
    browser
        .ask_ginger_for_a_reference("Would you write me a reference for the club?")
        .await;
    browser
        .click("form[action='/accounts/logout'] button")
        .await;
    browser.wait_for_text("You have logged out").await;

    // Ginger follows her link.
    let request = app.smtp.wait_for(2).await[1].parsed();
    assert_eq!(request.to, "ginger@example.org");
    let start = request.text.find("http").expect("a link");
    let link: String = request.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    // Mailed links use server.base_url; open the same path on the test server.
    let path = &link[link.find("/references/").expect("a respond link")..];
    browser.goto(&app.url(path)).await;
    browser.wait_for_text("Continue as Ginger Rogers").await;
    browser.click("#visitor-enter button[type=submit]").await;
    browser.wait_for_text("How do you know Fred Astaire?").await;
    assert!(
        !browser.current_url().await.contains("vid="),
        "the token left the address"
    );
    browser.fill("#relationship", "Dance partner").await;
    browser.fill("#years_known", "12").await;
    browser
        .click("#respond-relationship button[type=submit]")
        .await;
    browser
        .wait_for_text("Would you recommend Fred Astaire?")
        .await;
    // She starts her reference, goes Back a step: both steps keep what she
    // typed (a draft, unchecked), and Next brings it back.
    browser.fill("#reference", "Fred leads with care").await;
    browser.click("#rec-strongly").await;
    browser.click("#respond-reference button[value=back]").await;
    browser.wait_for_text("How do you know Fred Astaire?").await;
    assert_eq!(
        browser
            .script("return document.querySelector('#relationship').value")
            .await
            .as_str(),
        Some("Dance partner")
    );
    browser
        .click("#respond-relationship button[type=submit]")
        .await;
    browser
        .wait_for_text("Would you recommend Fred Astaire?")
        .await;
    assert_eq!(
        browser
            .script("return document.querySelector('#reference').value + '|' + document.querySelector('#rec-strongly').checked")
            .await
            .as_str(),
        Some("Fred leads with care|true"),
        "the draft came back"
    );
    browser
        .fill(
            "#reference",
            "Fred leads with care and never misses a practice.",
        )
        .await;
    browser
        .click("#respond-reference button[type=submit]")
        .await;
    browser.wait_for_text("Check your reference").await;
    // Edit from the review returns to the review.
    browser
        .click("a[href='/references/respond/relationship?then=confirm']")
        .await;
    browser.fill("#years_known", "13").await;
    browser
        .click("#respond-relationship button[type=submit]")
        .await;
    browser.wait_for_text("Check your reference").await;
    browser.wait_for_text("13 years").await;
    browser.wait_for_text("Check your reference").await;
    browser.click("#respond-confirm button[type=submit]").await;
    browser.wait_for_text("Your reference has been sent.").await;

    // Fred reads it (his code still works for 30 days).
    let done = app.smtp.wait_for(3).await[2].parsed();
    assert_eq!(done.subject, "Ginger Rogers has written your reference");
    browser.goto(&app.url(&login_link)).await;
    browser.click("#code-login button[type=submit]").await;
    browser.wait_for_text("Welcome back").await;
    browser.goto(&app.url("/references")).await;
    browser.click("td.row-actions a.button").await;
    browser
        .wait_for_text("Fred leads with care and never misses a practice.")
        .await;
    browser.wait_for_text("I recommend them strongly").await;
    eprintln!("browser core loop took {:.1?}", started.elapsed());
    browser.quit().await;
}

/// Staff in the browser: the dashboard's charts with data, a visitor link
/// made and copied from the page, and revoking an invitation only after a
/// confirmation that names the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_dashboard_visitor_link_and_revoke_confirmation_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    app.invite("fred@example.org", "Fred Astaire").await;
    let (_, token) = app.visitor("demo", "ginger@example.org", "Ginger").await;
    app.follow_link(&format!("/visitors/demo?vid={token}"))
        .await;
    app.flush_logs().await;

    browser.goto(&app.url("/accounts/login")).await;
    browser.fill("#username", "boss").await;
    browser.fill("#password", "a long staff password").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("Welcome back").await;
    browser.click("nav.site-nav a[href='/staff']").await;
    browser
        .wait_for_text("In the last 30 days, 1 invitation was sent and 0 first used.")
        .await;
    browser
        .wait_for_text("through visitor links of 1 scope.")
        .await;
    // Four drawn charts, each with bars for the data and its table behind a toggle.
    let drawn = browser
        .script(
            "return [document.querySelectorAll('svg.chart-drawing').length,
                     document.querySelectorAll('#chart-invitations svg.chart-drawing rect.bar-solid').length,
                     document.querySelector('#chart-invitations details').open]",
        )
        .await;
    assert_eq!(drawn, serde_json::json!([4, 1, false]));
    browser.click("#chart-visits details summary").await;
    browser.wait_for_text("demo").await;

    // A visitor link, from the dashboard's section list.
    browser.click("a[href='/staff/visitors/new']").await;
    browser.fill("#email", "cyd@example.org").await;
    browser.fill("#first_name", "Cyd").await;
    browser.fill("#last_name", "Charisse").await;
    browser.click("#send_mail").await;
    browser.click("#new-visitor button[type=submit]").await;
    browser
        .wait_for_text("Visitor link made for Cyd Charisse")
        .await;
    let link = browser
        .script("return document.querySelector('#visitor-link').textContent.trim()")
        .await;
    let link = link.as_str().expect("the link shown");
    assert!(link.contains("/visitors/demo?"), "{link}");
    assert_eq!(app.smtp.messages().len(), 0, "not mailed when unticked");
    let visitor = app.new_browser();
    visitor
        .follow_link(&link[link.find("/visitors/demo").expect("path")..])
        .await;
    assert!(visitor.get_html("/visitors/demo").await.contains("Cyd"));

    // Revoking asks first, naming the person and the effect.
    browser.goto(&app.url("/staff/invites")).await;
    browser
        .click("button[aria-label='Revoke the invitation for fred@example.org']")
        .await;
    browser
        .wait_for_text("Revoke the invitation for Fred Astaire (fred@example.org)?")
        .await;
    browser.wait_for_text("stops working at once").await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE revoked_at IS NOT NULL")
            .await,
        0,
        "nothing revoked before the confirmation"
    );
    browser.click("#confirm-form button[type=submit]").await;
    browser.wait_for_text("was revoked").await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE revoked_at IS NOT NULL")
            .await,
        1
    );
    browser.quit().await;
}

/// On a phone, a failed login shows its errors where the person looks: the
/// summary at the top has the focus, inside the screen, and links to the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_on_a_phone_shows_the_error_summary_in_view() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    browser.set_viewport(390, 844).await;
    browser
        .goto(&app.url("/accounts/login?code=ABCDEF234"))
        .await;
    // Came with a code: the code form comes first.
    let first = browser
        .script("return document.querySelector('.login-grid form').id")
        .await;
    assert_eq!(first.as_str(), Some("code-login"));
    browser.click("#code-login button[type=submit]").await;
    browser.wait_for_text("There is a problem").await;
    let state = browser
        .script(
            "var s = document.getElementById('error-summary'); var box = s.getBoundingClientRect();
             return [document.activeElement === s, box.top >= 0 && box.bottom <= window.innerHeight,
                     document.title.indexOf('Error: ') === 0,
                     s.querySelector('a').getAttribute('href'),
                     document.documentElement.scrollWidth <= window.innerWidth]",
        )
        .await;
    assert_eq!(
        state,
        serde_json::json!([true, true, true, "#code", true]),
        "focused, on screen, titled, linked to the field, no sideways scroll"
    );
    browser.quit().await;
}
