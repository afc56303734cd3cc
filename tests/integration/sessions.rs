//! The session cache: sessions are served from memory, and every change —
//! a logout, a revoked code, a deactivated visitor — is honoured at once, on
//! this instance and on another instance sharing the PostgreSQL database.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::cookie::Jar;

use crate::backend_tests;
use crate::helpers::{Backend, Browser, TestApp, client_with, spawn_app, test_settings};

/// Rounds per two-instance case: each round is one chance for a stale
/// cache entry to be served.
const ROUNDS: usize = 8;

/// A second `serve` instance on the same database and secret.
async fn second_instance(app: &TestApp) -> String {
    let mut settings = test_settings();
    settings.database.url = app.state.settings.database.url.clone();
    settings.secret_key = app.state.settings.secret_key.clone();
    let second = gatehouse::Application::build(settings)
        .await
        .expect("second instance");
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    // Its listener is up once a session it has read is kept (see
    // `SessionCache`); until then it reads through, which is also correct.
    address
}

/// A browser on `address` holding `session` (a session cookie's value).
fn browser_on(address: &str, session: &str) -> Browser {
    let jar = Arc::new(Jar::default());
    jar.add_cookie_str(
        &format!("gatehouse_session={session}"),
        &address.parse().expect("url"),
    );
    Browser {
        address: address.to_owned(),
        client: client_with(jar.clone()),
        jar,
        host: None,
    }
}

async fn a_warm_session_is_served_from_memory(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
    let other = app.new_browser();
    other.login_with_password("fred", "tap dancing shoes").await;
    app.settle().await;
    // With the table out of reach, only memory can answer for the session
    // read before; the one never read cannot be answered.
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
    app.execute("ALTER TABLE sessions RENAME TO sessions_away")
        .await;
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
    assert_eq!(
        other.get("/").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    app.execute("ALTER TABLE sessions_away RENAME TO sessions")
        .await;
    assert_eq!(other.whoami().await.as_deref(), Some("fred"));
}

/// Recording that a session was used (`last_seen_at`) changes nothing a
/// cached session holds, so it evicts nothing; a change to any other column
/// does. The trigger's column list is the table's, but for `last_seen_at`.
async fn only_touching_a_session_leaves_it_cached(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_watches_all_but(
        &app,
        backend,
        "sessions",
        migration::m20261201_160001_session_touch_quiet::SESSION_COLUMNS_WATCHED,
        "last_seen_at",
    )
    .await;

    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    // The first page binds the form token to the session (a write); the
    // second is read and kept.
    for _ in 0..2 {
        assert_eq!(app.whoami().await.as_deref(), Some("fred"));
        app.settle().await;
    }
    app.execute("UPDATE sessions SET last_seen_at = expires_at")
        .await;
    assert_eq!(who_from_memory(&app).await, Ok(Some("fred".to_owned())));
    app.execute("UPDATE sessions SET user_agent = user_agent || ' (changed)'")
        .await;
    assert_eq!(
        who_from_memory(&app).await,
        Err(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
}

/// Who `app`'s own browser is shown as while the sessions table is out of
/// reach, so that only the session cache can answer; the status when the
/// page cannot be served.
async fn who_from_memory(app: &TestApp) -> Result<Option<String>, StatusCode> {
    app.execute("ALTER TABLE sessions RENAME TO sessions_away")
        .await;
    let who = match app.get("/").await.status() {
        StatusCode::OK => Ok(app.whoami().await),
        status => Err(status),
    };
    app.execute("ALTER TABLE sessions_away RENAME TO sessions")
        .await;
    who
}

/// That a change trigger's column list (`watched`) is every column of
/// `table` but `quiet`, so a column added later is watched or fails here.
async fn assert_watches_all_but(
    app: &TestApp,
    backend: Backend,
    table: &str,
    watched: &[&str],
    quiet: &str,
) {
    let mut expected = watched.to_vec();
    expected.push(quiet);
    expected.sort_unstable();
    assert_eq!(columns_of(app, backend, table).await, expected.join(","));
}

/// The columns of `table`, sorted and joined with commas.
async fn columns_of(app: &TestApp, backend: Backend, table: &str) -> String {
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT group_concat(name, ',') FROM \
             (SELECT name FROM pragma_table_info('{table}') ORDER BY name)"
        ),
        Backend::Postgres => format!(
            "SELECT string_agg(column_name::text, ',' ORDER BY column_name) \
             FROM information_schema.columns \
             WHERE table_name = '{table}' AND table_schema = current_schema()"
        ),
    };
    app.scalar_text(&sql).await
}

/// Recording a login (`users.last_login_at`) changes nothing a cached
/// session holds, so logging in on a phone leaves the laptop's session in
/// memory; a change to any other column of the member still evicts it. The
/// trigger's column list is the table's, but for `last_login_at`.
async fn a_login_elsewhere_leaves_the_other_sessions_cached(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_watches_all_but(
        &app,
        backend,
        "users",
        migration::m20261201_170001_login_hot_path::USER_COLUMNS_WATCHED,
        "last_login_at",
    )
    .await;

    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    for _ in 0..2 {
        assert_eq!(app.whoami().await.as_deref(), Some("fred"));
        app.settle().await;
    }
    let phone = app.new_browser();
    phone.login_with_password("fred", "tap dancing shoes").await;
    assert_eq!(phone.whoami().await.as_deref(), Some("fred"));
    app.settle().await;
    assert_eq!(who_from_memory(&app).await, Ok(Some("fred".to_owned())));
    app.execute("UPDATE users SET first_name = 'Fred'").await;
    assert_eq!(
        who_from_memory(&app).await,
        Err(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
}

async fn a_logout_elsewhere_is_honoured_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for round in 0..ROUNDS {
        let laptop = app.new_browser();
        laptop
            .login_with_password("fred", "tap dancing shoes")
            .await;
        let session = laptop.cookie("gatehouse_session").expect("session");
        // The same session in a second tab: read, so cached.
        let tab = browser_on(&app.address, &session);
        assert_eq!(tab.whoami().await.as_deref(), Some("fred"), "round {round}");
        let response = laptop.post_form("/accounts/logout", &[]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(tab.whoami().await, None, "round {round}");
    }
}

async fn second_instance_logout(app: &TestApp, other: &str) {
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    for round in 0..ROUNDS {
        let laptop = app.new_browser();
        laptop
            .login_with_password("fred", "tap dancing shoes")
            .await;
        let session = laptop.cookie("gatehouse_session").expect("session");
        let phone = browser_on(other, &session);
        assert_eq!(
            phone.whoami().await.as_deref(),
            Some("fred"),
            "round {round}"
        );
        assert_eq!(
            phone.whoami().await.as_deref(),
            Some("fred"),
            "round {round}"
        );
        laptop.post_form("/accounts/logout", &[]).await;
        assert_eq!(phone.whoami().await, None, "round {round}");
    }
}

async fn second_instance_revoked_code(app: &TestApp, other: &str) {
    let staff = app.new_browser();
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    staff
        .login_with_password("boss", "a long staff password")
        .await;
    for round in 0..ROUNDS {
        let email = format!("maria{round}@example.org");
        let code = app.invite(&email, "Maria").await;
        let member = app.new_browser();
        assert_eq!(
            member.login_with_code(&code).await.status(),
            StatusCode::SEE_OTHER
        );
        let session = member.cookie("gatehouse_session").expect("session");
        let phone = browser_on(other, &session);
        // Read twice: the first view may write (its welcome is consumed);
        // the second is served from the other instance's cache.
        assert!(phone.whoami().await.is_some(), "round {round}");
        assert!(phone.whoami().await.is_some(), "round {round}");
        let invite_id = app
            .scalar(&format!("SELECT id FROM invites WHERE email = '{email}'"))
            .await;
        let response = staff
            .post_form(
                &format!("/staff/invites/{invite_id}/revoke"),
                &[("confirm", "yes")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "round {round}");
        // Sent to log in again, with the reason.
        let response = phone.get("/").await;
        assert!(response.status().is_redirection(), "round {round}");
        assert!(
            response.headers()["location"]
                .to_str()
                .expect("ascii")
                .starts_with("/accounts/login"),
            "round {round}"
        );
        assert!(
            phone
                .get_html("/accounts/login")
                .await
                .contains("has been withdrawn"),
            "round {round}"
        );
    }
}

async fn second_instance_deactivated_visitor(app: &TestApp, other: &str) {
    let staff = app.new_browser();
    app.create_user("boss", "boss@example.org", "a long staff password", true)
        .await;
    staff
        .login_with_password("boss", "a long staff password")
        .await;
    for round in 0..ROUNDS {
        let (id, token) = app
            .visitor("demo", &format!("ginger{round}@example.org"), "Ginger")
            .await;
        let visitor = app.new_browser();
        visitor
            .follow_link(&format!("/visitors/demo?vid={token}"))
            .await;
        let session = visitor.cookie("gatehouse_session").expect("session");
        let phone = browser_on(other, &session);
        for _ in 0..2 {
            assert_eq!(
                phone.get("/visitors/demo").await.status(),
                StatusCode::OK,
                "round {round}"
            );
        }
        let response = staff
            .post_form(
                &format!("/staff/visitors/{id}/deactivate"),
                &[("confirm", "yes")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "round {round}");
        assert_ne!(
            phone.get("/visitors/demo").await.status(),
            StatusCode::OK,
            "round {round}"
        );
    }
}

/// Two instances on one PostgreSQL: a change committed through one is
/// honoured by the other on its next request.
macro_rules! two_instance_tests {
    ($($case:ident => $body:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(app) = spawn_app(Backend::Postgres).await else {
                    return;
                };
                let other = second_instance(&app).await;
                $body(&app, &other).await;
            }
        )*
    };
}

/// `gatehouse user deactivate` says it is done only once every serving
/// instance has heard the change, as a staff page's answer does; an
/// instance that does not answer is named in a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_change_waits_until_every_instance_has_heard_it() {
    use gatehouse::accounts::users::RoleChange;
    use gatehouse::cli::user::{UserTargetArgs, change};
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    app.create_user("fred", "fred@example.org", "tap dancing shoes", false)
        .await;
    app.login_with_password("fred", "tap dancing shoes").await;
    assert_eq!(app.whoami().await.as_deref(), Some("fred"));
    // A serving instance that greets the others but never answers.
    let db = app.db().clone();
    let silent = tokio::spawn(async move {
        loop {
            let hello = Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_notify('gatehouse_sessions', 'hello:4242')",
            );
            let _ = db.execute_raw(hello).await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    let mut settings = test_settings();
    settings.database.url = app.state.settings.database.url.clone();
    settings.secret_key = app.state.settings.secret_key.clone();
    let fred = || UserTargetArgs {
        user: "fred".into(),
        domain: None,
    };
    let terminal = gatehouse::cli::terminal::Terminal::none();
    let started = std::time::Instant::now();
    let done = change(settings.clone(), fred(), RoleChange::Deactivate, &terminal)
        .await
        .expect("deactivated")
        .to_string();
    assert!(done.contains("fred was deactivated"), "{done}");
    assert!(
        done.contains("Warning: 1 serving instance(s) did not confirm"),
        "{done}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    // The instance that answered had already ended fred's session.
    assert_eq!(app.whoami().await, None);

    silent.abort();
    // Once it is silent for good, it is no longer waited for.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let done = change(settings, fred(), RoleChange::Reactivate, &terminal)
        .await
        .expect("reactivated")
        .to_string();
    assert!(
        done.contains("fred was reactivated") && !done.contains("Warning"),
        "{done}"
    );
}

mod two_instances {
    use super::*;

    two_instance_tests!(
        a_logout_on_one_instance_ends_the_session_on_the_other => second_instance_logout,
        a_revoked_code_is_refused_by_the_other_instance => second_instance_revoked_code,
        a_deactivated_visitor_is_refused_by_the_other_instance => second_instance_deactivated_visitor,
    );
}

backend_tests!(
    a_warm_session_is_served_from_memory,
    only_touching_a_session_leaves_it_cached,
    a_login_elsewhere_leaves_the_other_sessions_cached,
    a_logout_elsewhere_is_honoured_at_once,
);
