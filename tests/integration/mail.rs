//! Mail: the invitation's content, the outbox (sealed bodies, nothing lost
//! while the mail server is down, retries), staff's mail page, transports,
//! and how long 1 000 queued messages take to reach a real SMTP server.

mod tls;

use std::time::Instant;

use reqwest::StatusCode;
use sea_orm::TransactionTrait;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_redirects_to, code_in_mail, code_on_page, spawn_app, spawn_app_with,
    unescape,
};
use crate::support::smtp::{SmtpSink, free_port};
use gatehouse::email_address::EmailAddress;
use gatehouse::mail::Mail;
use gatehouse::mail::outbox::Outgoing;
use gatehouse::settings::{MailTransportKind, Secret, Settings};

async fn staff_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let app = spawn_app_with(backend, adjust).await?;
    app.staff_login().await;
    Some(app)
}

async fn the_invitation_mail_has_the_code_and_login_link_in_both_parts(backend: Backend) {
    let Some(app) = staff_app_with(backend, |_| {}).await else {
        return;
    };
    let code = app
        .send_invite_and_read_code("fred@example.org", "<b>Fred</b> Astaire")
        .await;
    let mail = &app.smtp.wait_for(1).await[0];
    assert_eq!(mail.from, "noreply@localhost", "envelope sender");
    assert_eq!(mail.to, ["fred@example.org"]);
    let parsed = mail.parsed();
    assert_eq!(parsed.subject, "Your invitation to Gatehouse");
    assert_eq!(parsed.from, "noreply@localhost");
    assert_eq!(parsed.from_name, "Gatehouse", "named after the site");
    assert_eq!(parsed.to, "fred@example.org");

    let link = format!("http://127.0.0.1:8080/accounts/login?code={code}");
    let html = unescape(&parsed.html);
    for (part, body) in [("text", &parsed.text), ("html", &html)] {
        assert!(body.contains(&code), "{part} has the code:\n{body}");
        assert!(body.contains(&link), "{part} has the login link:\n{body}");
        assert!(
            body.contains("boss has invited you"),
            "{part} says who sent it"
        );
        assert!(body.contains("within 14 days"), "{part}: first use window");
        assert!(body.contains("for 30 days"), "{part}: validity after use");
    }
    assert!(html.contains(&format!("<a href=\"{link}\"")));
    assert!(
        parsed.text.contains("Hello <b>Fred</b>,"),
        "text is not escaped"
    );
    assert!(
        parsed.html.contains("Hello &lt;b&gt;Fred&lt;&#x2F;b&gt;,"),
        "names are escaped in HTML:\n{}",
        parsed.html
    );
}

async fn the_mailed_code_logs_in_and_the_invite_is_marked_sent(backend: Backend) {
    let Some(app) = staff_app_with(backend, |_| {}).await else {
        return;
    };
    app.send_invite_and_read_code("ginger@example.org", "Ginger Rogers")
        .await;
    let mail = &app.smtp.wait_for(1).await[0];
    let code = code_in_mail(&mail.parsed().text);
    app.eventually("SELECT COUNT(*) FROM invites WHERE sent_at IS NOT NULL", 1)
        .await;

    let invitee = app.new_browser();
    let link = format!("/accounts/login?code={code}");
    assert_redirects_to(&invitee.get(&link).await, "/accounts/login");
    let page = invitee.get_html("/accounts/login").await;
    assert!(
        page.contains(&format!("value=\"{code}\"")),
        "the link pre-fills"
    );
    assert_eq!(invitee.whoami().await, None, "a GET never logs in");
    assert_redirects_to(&invitee.login_with_code(&code).await, "/");
    assert_eq!(
        invitee.whoami().await.as_deref(),
        Some("ginger@example.org")
    );
}

async fn the_outbox_holds_no_readable_code_before_or_after_delivery(backend: Backend) {
    let Some(app) = staff_app_with(backend, |_| {}).await else {
        return;
    };
    app.smtp.refuse(true);
    let response = app.send_invite("cyd@example.org", "Cyd Charisse", "").await;
    assert_redirects_to(&response, "/invites/sent");
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending' AND attempts > 0 \
         AND last_error IS NOT NULL AND body IS NOT NULL",
        1,
    )
    .await;
    // Before the result page: the new code also waits in the session.
    let before = app.database_dump().await;
    let code = code_on_page(&app.get_html("/invites/sent").await);
    assert!(before.contains("cyd@example.org"), "the dump is readable");
    assert!(before.contains("Your invitation to Gatehouse"));
    assert!(
        !before.contains(&code),
        "no code in the database while queued"
    );
    assert!(!before.contains(&format!("code={code}")));

    app.smtp.refuse(false);
    app.smtp.wait_for(1).await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL \
         AND sent_at IS NOT NULL AND last_error IS NULL",
        1,
    )
    .await;
    let after = app.database_dump().await;
    assert!(
        !after.contains(&code),
        "no code in the database once delivered"
    );
    assert_eq!(code_in_mail(&app.smtp.messages()[0].parsed().text), code);
}

async fn mail_queued_while_the_mail_server_is_down_goes_out_when_it_is_back(backend: Backend) {
    let port = free_port();
    let Some(app) = staff_app_with(backend, |settings| {
        settings.mail.smtp_url = Secret::new(format!("smtp://127.0.0.1:{port}"));
    })
    .await
    else {
        return;
    };
    let response = app
        .send_invite("eleanor@example.org", "Eleanor Powell", "")
        .await;
    assert_redirects_to(&response, "/invites/sent");
    let page = app.get_html("/invites/sent").await;
    assert!(page.contains("queued"), "{page}");
    let code = code_on_page(&page);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM invites").await, 1);
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending' AND attempts >= 2 \
         AND last_error IS NOT NULL",
        1,
    )
    .await;
    let mail_page = app.get_html("/staff/mail").await;
    assert!(mail_page.contains("eleanor@example.org"));
    assert!(mail_page.contains(">retrying<"), "{mail_page}");
    assert!(mail_page.contains("Connection refused") || mail_page.contains("SMTP"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE sent_at IS NULL")
            .await,
        1
    );

    let sink = SmtpSink::start_on(port).await;
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(code_in_mail(&mail.parsed().text), code);
    app.eventually("SELECT COUNT(*) FROM invites WHERE sent_at IS NOT NULL", 1)
        .await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL",
        1,
    )
    .await;
    assert!(
        app.get_html("/staff/mail")
            .await
            .contains("No mail is waiting")
    );
}

async fn staff_see_failed_mail_and_can_retry_it(backend: Backend) {
    let Some(app) = staff_app_with(backend, |settings| settings.mail.max_attempts = 2).await else {
        return;
    };
    app.smtp.refuse(true);
    app.send_invite_and_read_code("vera@example.org", "Vera-Ellen")
        .await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'failed' AND attempts = 2",
        1,
    )
    .await;
    let page = app.get_html("/staff/mail").await;
    assert!(page.contains(">failed<"), "{page}");
    assert!(
        page.contains("temporarily refusing"),
        "the last error is shown"
    );
    assert!(page.contains("Retry now"));
    let id = app.scalar("SELECT id FROM mail_outbox").await;

    app.smtp.refuse(false);
    let response = app
        .post_form(
            &format!("/staff/mail/{id}/retry"),
            &[("back", "/staff/mail")],
        )
        .await;
    assert_redirects_to(&response, "/staff/mail");
    app.smtp.wait_for(1).await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL",
        1,
    )
    .await;
    assert!(
        app.get_html("/staff/mail?show=sent")
            .await
            .contains("vera@example.org")
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'mail.retried'")
            .await,
        1
    );
    // A delivered message cannot be sent again; an unknown one is a 404.
    app.post_form(&format!("/staff/mail/{id}/retry"), &[]).await;
    assert!(
        app.get_html("/staff/mail")
            .await
            .contains("was already delivered")
    );
    let response = app.post_form("/staff/mail/424242/retry", &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.smtp.messages().len(), 1);
}

/// Queues `count` messages in one transaction, so the worker sees them all
/// at once, like a backlog after an outage.
async fn queue_many(app: &TestApp, count: usize) {
    let site = app.state.sites.for_host("127.0.0.1").await;
    let sender = app.state.mailer.sender_for(&site.name);
    let mail = Mail {
        subject: "Your invitation to Gatehouse".into(),
        text: "Your invitation code is ABCDEF234.\n".repeat(40),
        html: "<p>Your invitation code is <strong>ABCDEF234</strong>.</p>\n".repeat(40),
    };
    let txn = app.db().begin().await.expect("begin");
    let now = chrono::Utc::now();
    for n in 0..count {
        let recipient = EmailAddress::parse(&format!("person{n}@example.org")).expect("email");
        app.state
            .mailer
            .queue(
                &txn,
                Outgoing {
                    site_id: site.id,
                    invite_id: None,
                    sender: &sender,
                    recipient: &recipient,
                    mail: &mail,
                },
                now,
            )
            .await
            .expect("queued");
    }
    txn.commit().await.expect("commit");
}

async fn a_thousand_queued_mails_all_reach_the_mail_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    queue_many(&app, 1000).await;
    let started = Instant::now();
    app.state.mailer.wake();
    let messages = app.smtp.wait_for(1000).await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL",
        1000,
    )
    .await;
    let took = started.elapsed();
    // The figure for the notes; the test asserts only that nothing is lost
    // or sent twice.
    eprintln!(
        "{backend:?}: 1000 queued mails delivered to the SMTP sink in {:.2} s",
        took.as_secs_f64()
    );
    let mut recipients: Vec<String> = messages.iter().map(|m| m.to[0].clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 1000, "each message exactly once");
    assert_eq!(messages.len(), 1000);
}

async fn the_file_transport_writes_each_message_as_an_eml_file(backend: Backend) {
    let out = tempfile::tempdir().expect("dir");
    let dir = out.path().join("mail-out");
    let file_dir = dir.clone();
    let Some(app) = staff_app_with(backend, move |settings| {
        settings.mail.transport = MailTransportKind::File;
        settings.mail.file_dir = file_dir;
    })
    .await
    else {
        return;
    };
    let code = app
        .send_invite_and_read_code("ann@example.org", "Ann Miller")
        .await;
    app.eventually("SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent'", 1)
        .await;
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the directory was made")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let eml = std::fs::read_to_string(&files[0]).expect("read");
    assert!(eml.contains("Subject: Your invitation to Gatehouse"));
    assert!(eml.contains(&code));
    assert!(app.smtp.messages().is_empty());
}

async fn the_log_transport_delivers_nothing_and_the_pages_say_so(backend: Backend) {
    let Some(app) = staff_app_with(backend, |settings| {
        settings.mail.transport = MailTransportKind::Log;
    })
    .await
    else {
        return;
    };
    assert!(
        app.get_html("/invites/send")
            .await
            .contains("Mail delivery is switched off")
    );
    let response = app
        .send_invite("leslie@example.org", "Leslie Caron", "")
        .await;
    assert_redirects_to(&response, "/invites/sent");
    let page = app.get_html("/invites/sent").await;
    assert!(page.contains("give the code to them yourself"), "{page}");
    assert!(page.contains("<h1>Invitation created</h1>"));
    assert!(!code_on_page(&page).is_empty());
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND body IS NULL",
        1,
    )
    .await;
    assert!(app.smtp.messages().is_empty());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM invites WHERE sent_at IS NULL")
            .await,
        1,
        "not shown as sent: nobody received it"
    );
}

async fn revoking_an_invitation_cancels_its_mail_not_yet_delivered(backend: Backend) {
    let Some(app) = staff_app_with(backend, |_| {}).await else {
        return;
    };
    app.smtp.refuse(true);
    app.send_invite_and_read_code("nyree@example.org", "Nyree Dawn Porter")
        .await;
    app.eventually(
        "SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending' AND attempts > 0",
        1,
    )
    .await;
    let id = app.scalar("SELECT id FROM invites").await;
    app.post_form(
        &format!("/staff/invites/{id}/revoke"),
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE status = 'cancelled' AND body IS NULL")
            .await,
        1
    );
    app.smtp.refuse(false);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(app.smtp.messages().is_empty(), "a dead code is not mailed");
    assert!(
        app.get_html("/staff/mail?show=all")
            .await
            .contains(">cancelled<")
    );
}

/// Two instances on one database (as behind a load balancer): both workers
/// deliver, and every message goes out exactly once.
async fn two_instances_deliver_each_queued_mail_exactly_once(backend: Backend) {
    let Some(first) = spawn_app(backend).await else {
        return;
    };
    let url = first.state.settings.database.url.clone();
    let smtp = first.smtp.url();
    let second = spawn_app_with(backend, move |settings| {
        settings.database.url = url;
        settings.mail.smtp_url = Secret::new(smtp);
    })
    .await
    .expect("a second instance");
    queue_many(&first, 300).await;
    first.state.mailer.wake();
    second.state.mailer.wake();
    let messages = first.smtp.wait_for(300).await;
    first
        .eventually(
            "SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent'",
            300,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let messages_now = first.smtp.messages();
    assert_eq!(messages_now.len(), 300, "nothing sent twice");
    let mut recipients: Vec<&str> = messages.iter().map(|m| m.to[0].as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(recipients.len(), 300);
    assert!(
        second.smtp.messages().is_empty(),
        "both mail the shared server"
    );
}

backend_tests!(
    the_invitation_mail_has_the_code_and_login_link_in_both_parts,
    the_mailed_code_logs_in_and_the_invite_is_marked_sent,
    the_outbox_holds_no_readable_code_before_or_after_delivery,
    mail_queued_while_the_mail_server_is_down_goes_out_when_it_is_back,
    staff_see_failed_mail_and_can_retry_it,
    a_thousand_queued_mails_all_reach_the_mail_server,
    the_file_transport_writes_each_message_as_an_eml_file,
    the_log_transport_delivers_nothing_and_the_pages_say_so,
    revoking_an_invitation_cancels_its_mail_not_yet_delivered,
    two_instances_deliver_each_queued_mail_exactly_once,
);
