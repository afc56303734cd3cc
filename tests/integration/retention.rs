//! Retention that runs by itself: `serve` purges on a schedule, once per
//! interval across instances sharing a database; the purge also removes old
//! mail rows, spent links and old audit rows; `purge --dry-run` counts per
//! table.

use std::time::Duration;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_redirects_to, spawn_app_with};

/// An instance that checks every second whether a purge is due (interval:
/// one minute), on `url` when given.
async fn instance(backend: Backend, url: Option<String>) -> Option<TestApp> {
    spawn_app_with(backend, |settings| {
        settings.purge.interval_minutes = 1;
        settings.purge.poll_seconds = 1;
        if let Some(url) = url {
            settings.database.url = url;
        }
    })
    .await
}

async fn the_scheduled_purge_runs_once_across_two_instances(backend: Backend) {
    let Some(first) = instance(backend, None).await else {
        return;
    };
    let url = first.state.settings.database.url.clone();
    let second = instance(backend, Some(url))
        .await
        .expect("a second instance");
    first
        .eventually(
            "SELECT COUNT(*) FROM scheduled_jobs WHERE name = 'purge'",
            1,
        )
        .await;
    // Not due yet: nothing has run.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(first.scalar("SELECT runs FROM scheduled_jobs").await, 0);
    first
        .execute(&format!(
            "INSERT INTO sessions (id, data, expires_at) VALUES ('expired', '{{}}', {})",
            first.days_ago(1)
        ))
        .await;
    first
        .execute(&format!(
            "UPDATE scheduled_jobs SET last_run_at = {}",
            first.days_ago(1)
        ))
        .await;
    first.eventually("SELECT runs FROM scheduled_jobs", 1).await;
    first
        .eventually("SELECT COUNT(*) FROM sessions WHERE id = 'expired'", 0)
        .await;
    // Both instances keep checking every second; neither runs it again
    // within the interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(second.scalar("SELECT runs FROM scheduled_jobs").await, 1);
}

async fn the_purge_removes_old_mail_rows_spent_links_and_old_audit_rows(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let boss = app.staff_login().await;
    let fred = app
        .create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.post_form(
        &format!("/staff/members/{fred}/deactivate"),
        &[("confirm", "yes")],
    )
    .await;
    app.post_form(
        "/accounts/profile/email",
        &[("new_email", "boss@new.example")],
    )
    .await;
    app.eventually("SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent'", 1)
        .await;
    // A message delivered 31 days ago goes (mail.retention_days = 30); a
    // failed one of the same age waits for staff.
    app.execute(&format!(
        "UPDATE mail_outbox SET sent_at = {0}, created_at = {0}",
        app.days_ago(31)
    ))
    .await;
    app.execute(&format!(
        "INSERT INTO mail_outbox (site_id, sender, recipient, subject, status, attempts, \
         created_at, next_attempt_at) VALUES (1, 'x', 'y@example.org', 's', 'failed', 24, {0}, {0})",
        app.days_ago(40)
    ))
    .await;
    // The change link was used two days ago; an audit row is 366 days old.
    app.execute(&format!(
        "UPDATE email_changes SET used_at = {}",
        app.days_ago(2)
    ))
    .await;
    app.execute(&format!(
        "UPDATE audit_log SET created_at = {} WHERE action = 'user.deactivated'",
        app.days_ago(366)
    ))
    .await;
    let settings = &app.state.settings;
    let dry = gatehouse::purge::purge(app.db(), settings, true)
        .await
        .expect("dry run");
    assert_eq!(
        (dry.mail_rows, dry.email_changes, dry.audit_rows),
        (1, 1, 1)
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox").await,
        2,
        "a dry run deletes nothing"
    );
    let done = gatehouse::purge::purge(app.db(), settings, false)
        .await
        .expect("purge");
    assert_eq!(done, dry);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE status = 'failed'")
            .await,
        1
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM mail_outbox").await, 1);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM email_changes").await, 0);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'user.deactivated'")
            .await,
        0
    );
    // The boss is still logged in: live sessions stay.
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = {boss}"
        ))
        .await,
        1
    );
    assert_redirects_to(
        &app.post_form("/accounts/logout", &[]).await,
        "/accounts/logged-out",
    );
}

backend_tests!(
    the_scheduled_purge_runs_once_across_two_instances,
    the_purge_removes_old_mail_rows_spent_links_and_old_audit_rows,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_dry_run_prints_what_would_go_per_table() {
    use crate::cli::{gatehouse, run_beside};
    let dir = tempfile::tempdir().expect("dir");
    let mut command = gatehouse(dir.path());
    command.args(["purge", "--dry-run"]);
    let (ok, stdout, stderr) = run_beside(command).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Would delete 0 delivered or cancelled mail row(s) older than 30 days."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Would delete 0 audit log row(s) older than 365 days."),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Per table: visitors 0, visitor_logs 0, sessions 0, login_attempts 0, \
             password_resets 0, email_changes 0, mail_outbox 0, audit_log 0, \
             reference_requests (erased) 0."
        ),
        "{stdout}"
    );
}
