//! Every page of the core loop, walked in headless Chromium as staff, a new
//! member and a referee do it, checked at 1280 px and at 390 px (a phone):
//! axe-core (tests/integration/assets/axe-core, injected through WebDriver,
//! never served) must find no violation, and no page may be wider than the
//! phone's screen. The report lists each page and width; with
//! GATEHOUSE_TEST_SCREENSHOTS=dir, a screenshot of each is kept there.

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::support::browser::Browser;

const AXE: &str = include_str!("assets/axe-core/axe.min.js");
const WIDTHS: [(u32, u32); 2] = [(1280, 900), (390, 844)];

/// The checks of one page, as report lines; failures start with "FAIL".
async fn check(browser: &Browser, page: &str, report: &mut Vec<String>) {
    let already = report.len();
    for (width, height) in WIDTHS {
        browser.set_viewport(width, height).await;
        let violations = browser
            .script_async(&format!(
                "var done = arguments[arguments.length - 1];
                 if (!window.axe) {{ {AXE} }}
                 axe.run(document, {{ resultTypes: ['violations'] }}).then(function (result) {{
                   done(result.violations.map(function (v) {{
                     return v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(function (n) {{
                       return n.target.join(' ');
                     }}).join(', ');
                   }}));
                 }}, function (error) {{ done(['axe did not run: ' + error]); }});"
            ))
            .await;
        let violations: Vec<String> = violations
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect();
        // Elements reaching past the right edge, when the page scrolls sideways.
        let overflow = browser
            .script(
                "var width = window.innerWidth;
                 if (document.documentElement.scrollWidth <= width) { return ''; }
                 var wide = Array.from(document.querySelectorAll('body *')).filter(function (e) {
                   var box = e.getBoundingClientRect();
                   return box.right > width + 1 && box.width > 0;
                 }).slice(0, 3).map(function (e) {
                   return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                     (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '');
                 });
                 return document.documentElement.scrollWidth + ' px wide: ' + wide.join(', ');",
            )
            .await;
        let overflow = overflow.as_str().unwrap_or_default();
        // GATEHOUSE_TEST_SCREENSHOTS=dir keeps a picture of each page and width.
        if let Ok(dir) = std::env::var("GATEHOUSE_TEST_SCREENSHOTS") {
            let name: String = page
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            std::fs::write(
                format!("{dir}/{name}-{width}.png"),
                browser.screenshot().await,
            )
            .expect("screenshot written");
        }
        if violations.is_empty() && overflow.is_empty() {
            report.push(format!("ok   {page} at {width} px: no axe violation"));
        }
        for violation in violations {
            report.push(format!("FAIL {page} at {width} px: axe {violation}"));
        }
        if !overflow.is_empty() {
            report.push(format!(
                "FAIL {page} at {width} px: scrolls sideways, {overflow}"
            ));
        }
    }
    browser.set_viewport(1280, 900).await;
    for line in &report[already..] {
        eprintln!("{line}");
    }
}

/// The path of the link starting `/prefix` in the mail to `to`, once
/// `count` messages have arrived.
async fn path_in_mail(app: &TestApp, count: usize, to: &str, prefix: &str) -> String {
    let mail = app
        .smtp
        .wait_for(count)
        .await
        .iter()
        .map(|mail| mail.parsed())
        .find(|mail| mail.to == to)
        .unwrap_or_else(|| panic!("a mail to {to}"));
    let start = mail.text.find(prefix).expect("a link");
    mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_core_loop_page_passes_axe_and_fits_a_phone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    let maria = app
        .create_user("maria", "maria@example.org", "maria's long password", false)
        .await;
    let mut report = Vec::new();
    let b = &browser;

    browser.goto(&app.url("/accounts/login")).await;
    check(b, "login", &mut report).await;
    browser.fill("#username", "boss").await;
    browser.fill("#password", "not the password").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("do not match").await;
    check(b, "login, wrong password", &mut report).await;
    browser.fill("#password", "a long staff password").await;
    browser.click("#password-login button[type=submit]").await;
    browser.wait_for_text("Welcome back").await;
    check(b, "home (staff)", &mut report).await;

    // Staff: the dashboard, an invitation with a mistake on the way.
    browser.goto(&app.url("/invites/send")).await;
    check(b, "send invite", &mut report).await;
    browser.click("#send-invite button[type=submit]").await;
    browser.wait_for_text("There is a problem").await;
    check(b, "send invite, with errors", &mut report).await;
    browser.fill("#email", "fred@example.org").await;
    browser.fill("#name", "Fred Astaire").await;
    browser.click("#send-invite button[type=submit]").await;
    browser.wait_for_text("This code is shown only once").await;
    check(b, "invitation sent", &mut report).await;
    browser.goto(&app.url("/staff/invites")).await;
    check(b, "staff invites", &mut report).await;

    // Staff: a visitor link.
    browser.goto(&app.url("/staff/visitors/new")).await;
    check(b, "new visitor link", &mut report).await;
    browser.fill("#email", "vera@example.org").await;
    browser.fill("#first_name", "Vera").await;
    browser.fill("#context", "Company: Acme").await;
    browser.click("#new-visitor button[type=submit]").await;
    browser.wait_for_text("Visitor link made for Vera").await;
    check(b, "visitor link made", &mut report).await;
    browser.click("a.button[href^='/staff/visitors/']").await;
    browser.wait_for_text("About this visitor").await;
    check(b, "visitor detail", &mut report).await;
    browser.goto(&app.url("/staff/visitors")).await;
    check(b, "staff visitors", &mut report).await;
    browser.goto(&app.url("/staff/mail")).await;
    check(b, "staff mail", &mut report).await;
    browser.goto(&app.url("/staff/audit")).await;
    check(b, "staff audit", &mut report).await;
    browser.goto(&app.url("/staff")).await;
    check(b, "staff dashboard", &mut report).await;

    // Staff: members (issue 14's pages).
    browser.goto(&app.url("/staff/members")).await;
    check(b, "staff members", &mut report).await;
    browser.fill("#q", "nobody by this name").await;
    browser.click("form[role=search] button[type=submit]").await;
    browser.wait_for_text("No members match").await;
    check(b, "staff members, no match", &mut report).await;
    browser
        .goto(&app.url(&format!("/staff/members/{maria}")))
        .await;
    check(b, "staff member", &mut report).await;
    browser
        .click("form[action$='/deactivate'] button[type=submit]")
        .await;
    browser.wait_for_text("Deactivate maria?").await;
    check(b, "staff member, deactivate?", &mut report).await;
    browser
        .click("form[action='/accounts/logout'] button")
        .await;
    browser.wait_for_text("You have logged out").await;
    check(b, "logged out", &mut report).await;

    // Fred: the mailed code, his password, a reference request.
    let invitation = app.smtp.wait_for(2).await;
    let invitation = invitation
        .iter()
        .map(|mail| mail.parsed())
        .find(|mail| mail.to == "fred@example.org")
        .expect("Fred's invitation");
    let code = crate::helpers::code_in_mail(&invitation.text);
    browser
        .goto(&app.url(&format!("/accounts/login?code={code}")))
        .await;
    check(b, "login with a code", &mut report).await;
    browser.click("#code-login button[type=submit]").await;
    browser.wait_for_text("Hello, Fred Astaire").await;
    check(b, "home (new member)", &mut report).await;
    browser.goto(&app.url("/accounts/password")).await;
    check(b, "password", &mut report).await;
    browser.fill("#new_password", "short").await;
    browser.fill("#confirm_password", "other").await;
    browser.click("#password-form button[type=submit]").await;
    browser.wait_for_text("There ").await;
    check(b, "password, with errors", &mut report).await;
    // Fred's own account pages (issue 14).
    browser.goto(&app.url("/accounts/profile")).await;
    check(b, "profile", &mut report).await;
    browser.fill("#new_email", "not an address").await;
    browser.click("#email-form button[type=submit]").await;
    browser.wait_for_text("There is a problem").await;
    check(b, "profile, with errors", &mut report).await;
    browser.fill("#new_email", "fred@new.example").await;
    browser.click("#email-form button[type=submit]").await;
    let path = path_in_mail(&app, 3, "fred@new.example", "/accounts/profile/email/").await;
    browser.goto(&app.url(&path)).await;
    check(b, "new e-mail address, confirm", &mut report).await;
    browser.goto(&app.url("/accounts/sessions")).await;
    check(b, "sessions", &mut report).await;
    browser.goto(&app.url("/accounts/export")).await;
    check(b, "your data", &mut report).await;
    browser.goto(&app.url("/accounts/delete")).await;
    check(b, "delete account", &mut report).await;
    browser.click("#delete-form button[type=submit]").await;
    browser.wait_for_text("There ").await;
    check(b, "delete account, with errors", &mut report).await;

    browser.goto(&app.url("/references/request")).await;
    check(b, "reference request", &mut report).await;
    browser
        .ask_ginger_for_a_reference("Would you write me a reference?")
        .await;
    check(b, "references", &mut report).await;
    browser
        .click("form[action='/accounts/logout'] button")
        .await;
    browser.wait_for_text("You have logged out").await;

    // Ginger answers.
    let path = path_in_mail(&app, 4, "ginger@example.org", "/references/").await;
    browser.goto(&app.url(&path)).await;
    browser.wait_for_text("Continue as Ginger Rogers").await;
    check(b, "referee landing", &mut report).await;
    browser.click("#visitor-enter button[type=submit]").await;
    browser.wait_for_text("How do you know Fred Astaire?").await;
    check(b, "referee step 1", &mut report).await;
    browser
        .click("#respond-relationship button[type=submit]")
        .await;
    browser.wait_for_text("There ").await;
    check(b, "referee step 1, with errors", &mut report).await;
    browser.fill("#relationship", "Dance partner").await;
    browser.fill("#years_known", "12").await;
    browser
        .click("#respond-relationship button[type=submit]")
        .await;
    browser
        .wait_for_text("Would you recommend Fred Astaire?")
        .await;
    check(b, "referee step 2", &mut report).await;
    browser.fill("#reference", "Fred leads with care.").await;
    browser.click("#rec-strongly").await;
    browser
        .click("#respond-reference button[type=submit]")
        .await;
    browser.wait_for_text("Check your reference").await;
    check(b, "referee confirm", &mut report).await;
    browser.click("#respond-confirm button[type=submit]").await;
    browser.wait_for_text("Your reference has been sent.").await;
    check(b, "referee thanks", &mut report).await;
    // The mailed link, opened again, says the reference was sent.
    browser.goto(&app.url(&path)).await;
    browser
        .wait_for_text("You already sent this reference")
        .await;
    check(b, "referee link after sending", &mut report).await;
    browser.quit().await;

    let text = report.join("\n");
    eprintln!("accessibility report:\n{text}");
    assert!(!text.contains("FAIL"), "{text}");
}
