//! `spawn_app`: the real application on a random port with its own fresh,
//! migrated database (SQLite file in a temp dir, or a new database on the
//! throwaway PostgreSQL cluster), and a cookie-keeping HTTP client.

use std::sync::Arc;

use actix_web::web;
use gatehouse::email_address::EmailAddress;
use gatehouse::invites::{self, NewInvite};
use gatehouse::settings::{Secret, Settings};
use gatehouse::{AppState, Application};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode, Url};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::support::postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub state: web::Data<AppState>,
    pub backend: Backend,
    /// Holds the SQLite file until the test ends.
    pub dir: tempfile::TempDir,
}

/// Settings for a test app: random port, one worker, cheap hashing.
pub fn test_settings() -> Settings {
    let mut settings = Settings::defaults();
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 1;
    settings.database.max_connections = 5;
    settings.passwords.argon2_memory_kib = 1024;
    settings.passwords.argon2_iterations = 1;
    settings
}

/// Spawns the app with default test settings; `None` when the backend is
/// PostgreSQL and PostgreSQL is unavailable (and not required).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_app_with_routes(backend, adjust, |_| {}).await
}

/// As `spawn_app_with`, plus extra routes (e.g. guarded test views).
pub async fn spawn_app_with_routes(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
    routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings();
    match backend {
        Backend::Sqlite => {
            settings.database.url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("gatehouse.db").display()
            );
        }
        Backend::Postgres => {
            settings.database.url = postgres::fresh_database_url().await?;
            settings.secret_key = Secret::new("test-secret-key-for-postgres-0123456789abcdef");
        }
    }
    adjust(&mut settings);
    let app = Application::build_with(settings, routes)
        .await
        .expect("the app builds");
    let port = app.port();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let jar = Arc::new(Jar::default());
    Some(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: client_with(jar.clone()),
        jar,
        state,
        backend,
        dir,
    })
}

/// A client with its own cookie jar and no automatic redirects.
pub fn client_with(jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .build()
        .expect("client")
}

impl TestApp {
    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("body")
    }

    /// The value of a cookie in this client's jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        cookie_in(&self.jar, &self.address, name)
    }

    /// The CSRF token forms must carry (fetching a page first if needed).
    pub async fn csrf_token(&self) -> String {
        if let Some(token) = self.cookie("gatehouse_csrf") {
            return token;
        }
        let response = self.get("/accounts/login").await;
        assert_eq!(response.status(), StatusCode::OK);
        self.cookie("gatehouse_csrf")
            .expect("the login page sets the CSRF cookie")
    }

    /// POSTs a form with the CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.csrf_token().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.client
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .expect("POST")
    }

    pub async fn login_with_code(&self, code: &str) -> Response {
        self.post_form("/accounts/login/code", &[("code", code), ("next", "")])
            .await
    }

    pub async fn login_with_password(&self, username: &str, password: &str) -> Response {
        self.post_form(
            "/accounts/login",
            &[("username", username), ("password", password), ("next", "")],
        )
        .await
    }

    /// Who the home page says we are: the username, or `None` when anonymous.
    pub async fn whoami(&self) -> Option<String> {
        let html = self.get_html("/").await;
        let start = html.find("Signed in as ")? + "Signed in as ".len();
        let rest = &html[start..];
        let end = rest.find(['<', ' ', '\n'])?;
        Some(rest[..end].to_owned())
    }

    /// Creates an invite on the default site and returns its code.
    pub async fn invite(&self, email: &str, name: &str) -> String {
        let site = self.state.sites.for_host("127.0.0.1").await;
        let (_, code) = invites::create(
            self.db(),
            &self.state.keys,
            site.id,
            self.state.settings.invites.code_length,
            NewInvite {
                email: EmailAddress::parse(email).expect("valid e-mail"),
                name: name.into(),
                phone: "555-0100".into(),
                created_by: None,
                grants_staff: false,
            },
        )
        .await
        .expect("invite created");
        code.as_str().to_owned()
    }

    /// Creates a visitor on the default site; returns (visitor id, link token).
    pub async fn visitor(&self, scope: &str, email: &str, first_name: &str) -> (String, String) {
        self.visitor_with(scope, email, first_name, 0).await
    }

    pub async fn visitor_with(
        &self,
        scope: &str,
        email: &str,
        first_name: &str,
        session_expiry_secs: i64,
    ) -> (String, String) {
        use gatehouse::visitors::{NewVisitor, Scope, create};
        let site = self.state.sites.for_host("127.0.0.1").await;
        let (visitor, token) = create(
            self.db(),
            NewVisitor {
                site_id: site.id,
                scope: Scope::parse(scope).expect("scope"),
                first_name: first_name.into(),
                last_name: String::new(),
                email: EmailAddress::parse(email).expect("valid e-mail"),
                context: Some(serde_json::json!({ "reference_id": 42 })),
                valid_for: chrono::Duration::days(14),
                session_expiry_secs,
                created_by: None,
            },
        )
        .await
        .expect("visitor created");
        (visitor.id, token.as_string())
    }

    /// Follows a tokenised link as a person would: GET shows the landing
    /// page, its button POSTs to /visitors/enter. Returns the POST's response.
    pub async fn follow_link(&self, path_with_token: &str) -> Response {
        let landing = self.get(path_with_token).await;
        assert_eq!(
            landing.status(),
            StatusCode::OK,
            "landing page for {path_with_token}"
        );
        let html = landing.text().await.expect("body");
        let field = |name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html
                .find(&marker)
                .unwrap_or_else(|| panic!("no {name} field in {html}"))
                + marker.len();
            let end = html[start..].find('"').expect("closing quote") + start;
            html[start..end]
                .replace("&#x2F;", "/")
                .replace("&amp;", "&")
        };
        let (token, next) = (field("token"), field("next"));
        self.post_form("/visitors/enter", &[("token", &token), ("next", &next)])
            .await
    }

    /// Waits until queued visit log rows are in the database.
    pub async fn flush_logs(&self) {
        self.state.visit_log.flush().await;
    }

    /// Creates a member with a password on the default site.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        staff: bool,
    ) -> i64 {
        use gatehouse::accounts::users::{NewUser, create};
        let site = self.state.sites.for_host("127.0.0.1").await;
        let hash = self
            .state
            .hasher
            .hash(&Secret::new(password))
            .await
            .expect("hash");
        create(
            self.db(),
            NewUser {
                site_id: site.id,
                username: username.into(),
                email: EmailAddress::parse(email).expect("valid e-mail"),
                first_name: String::new(),
                last_name: String::new(),
                password_hash: Some(hash),
                is_staff: staff,
            },
        )
        .await
        .expect("user created")
        .id
    }

    /// Runs SQL written with `$1`-style placeholders on either backend.
    pub async fn execute(&self, sql: &str) {
        self.db()
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// One integer from a query.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let backend = self.db().get_database_backend();
        let row = self
            .db()
            .query_one_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("an integer")
    }

    /// A timestamp `days` ago, as an SQL literal both backends compare correctly.
    pub fn days_ago(&self, days: i64) -> String {
        let at = chrono::Utc::now() - chrono::Duration::days(days);
        match self.backend {
            // The format sqlx uses for DateTime<Utc> in SQLite.
            Backend::Sqlite => format!(
                "'{}'",
                at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)
            ),
            Backend::Postgres => format!("'{}'::timestamptz", at.to_rfc3339()),
        }
    }
}

pub fn cookie_in(jar: &Jar, address: &str, name: &str) -> Option<String> {
    let url: Url = address.parse().expect("url");
    let header = jar.cookies(&url)?;
    let header = header.to_str().ok()?.to_owned();
    header.split("; ").find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts the form came back (422) showing `message`; returns the page.
pub async fn assert_form_error(response: Response, message: &str) -> String {
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("body");
    assert!(html.contains(message), "expected {message:?} in:\n{html}");
    html
}

pub fn assert_redirects_to(response: &Response, expected: &str) {
    assert!(
        response.status().is_redirection(),
        "expected a redirect to {expected}, got {}",
        response.status()
    );
    assert_eq!(location(response), expected);
}

/// Declares each listed case (an `async fn(Backend)` in the same module) as a
/// test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}
