//! `spawn_app`: the real application on a random port with its own fresh,
//! migrated database (SQLite file in a temp dir, or a new database on the
//! throwaway PostgreSQL cluster), its own SMTP sink, and a cookie-keeping
//! HTTP client.

use std::sync::Arc;

use actix_web::web;
use gatehouse::email_address::EmailAddress;
use gatehouse::invites::{self, NewInvite};
use gatehouse::settings::{MailTransportKind, Secret, Settings};
use gatehouse::{AppState, Application};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode, Url};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::support::postgres;
use crate::support::smtp::SmtpSink;

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
    /// Where the app's mail goes (unless a test points it elsewhere).
    pub smtp: SmtpSink,
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
    let smtp = SmtpSink::start().await;
    settings.mail.transport = MailTransportKind::Smtp;
    settings.mail.smtp_url = Secret::new(smtp.url());
    // Fast retries and polling: delivery in tests takes milliseconds.
    settings.mail.retry_base_ms = 50;
    settings.mail.retry_max_ms = 400;
    settings.mail.max_attempts = 1000;
    settings.mail.poll_interval_ms = 100;
    settings.mail.timeout_secs = 5;
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
        smtp,
    })
}

/// A client with its own cookie jar and no automatic redirects.
pub fn client_with(jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        // Well inside the server's keep-alive (5 s): a connection idle that
        // long may be closed by the server just as it is reused, and the
        // request then fails ("IncompleteMessage"), as after a command that
        // waited seconds for the instances.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
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

    /// This test's browser: the app's own client and cookie jar.
    pub fn browser(&self) -> Browser {
        Browser {
            address: self.address.clone(),
            client: self.client.clone(),
            jar: self.jar.clone(),
            host: None,
        }
    }

    /// Another person's browser, with an empty cookie jar.
    pub fn new_browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        Browser {
            address: self.address.clone(),
            client: client_with(jar.clone()),
            jar,
            host: None,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.browser().get(path).await
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.browser().get_html(path).await
    }

    /// The value of a cookie in this client's jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.browser().cookie(name)
    }

    /// The CSRF token forms must carry (fetching a page first if needed).
    pub async fn csrf_token(&self) -> String {
        self.browser().csrf_token().await
    }

    /// POSTs a form with the CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.browser().post_form(path, fields).await
    }

    pub async fn login_with_code(&self, code: &str) -> Response {
        self.browser().login_with_code(code).await
    }

    pub async fn login_with_password(&self, username: &str, password: &str) -> Response {
        self.browser().login_with_password(username, password).await
    }

    pub async fn login_answering(&self, username: &str, password: &str, captcha: &str) -> Response {
        self.browser()
            .login_answering(username, password, captcha)
            .await
    }

    /// Who the home page says we are: the username, or `None` when anonymous.
    pub async fn whoami(&self) -> Option<String> {
        self.browser().whoami().await
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

    /// Follows a tokenised link in this test's browser (see `Browser::follow_link`).
    pub async fn follow_link(&self, path_with_token: &str) -> Response {
        self.browser().follow_link(path_with_token).await
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

    /// Creates a staff member with a password and logs this client in as them.
    pub async fn staff_login(&self) -> i64 {
        let id = self
            .create_user("boss", "boss@example.org", "a long staff password", true)
            .await;
        let response = self
            .login_with_password("boss", "a long staff password")
            .await;
        assert_redirects_to(&response, "/");
        id
    }

    /// Everything the database holds, as text: every byte of the SQLite
    /// files, or every row of every table on PostgreSQL (what a dump shows).
    pub async fn database_dump(&self) -> String {
        match self.backend {
            Backend::Sqlite => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(self.dir.path()).expect("dir") {
                    let path = entry.expect("entry").path();
                    if path.to_string_lossy().contains("gatehouse.db")
                        && !path.to_string_lossy().ends_with(".secret")
                    {
                        bytes.extend(std::fs::read(&path).expect("read"));
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Backend::Postgres => {
                let tables = self
                    .db()
                    .query_all_raw(Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                    ))
                    .await
                    .expect("tables");
                let mut text = String::new();
                for table in tables {
                    let table: String = table.try_get_by_index(0).expect("name");
                    let rows = self
                        .db()
                        .query_all_raw(Statement::from_string(
                            sea_orm::DbBackend::Postgres,
                            format!("SELECT t::text FROM \"{table}\" t"),
                        ))
                        .await
                        .expect("dump");
                    for row in rows {
                        text.push_str(&row.try_get_by_index::<String>(0).expect("text"));
                        text.push('\n');
                    }
                }
                text
            }
        }
    }

    /// Runs SQL on either backend, then waits until the app has heard what
    /// it changed (as after a request that writes).
    pub async fn execute(&self, sql: &str) {
        self.db()
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        self.settle().await;
    }

    /// Waits until this instance has heard every session change committed
    /// so far (a busy test machine can make one wait time out: retried).
    pub async fn settle(&self) {
        for _ in 0..20 {
            if gatehouse::web::session_feed::settle(&self.state.sessions, self.db()).await {
                return;
            }
        }
        panic!("session changes were not heard in 20 tries");
    }

    /// The first column of the first row, as text.
    pub async fn scalar_text(&self, sql: &str) -> String {
        let backend = self.db().get_database_backend();
        self.db()
            .query_one_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .expect("a row")
            .try_get_by_index::<String>(0)
            .expect("text")
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

    /// Waits (up to 15 s) until `sql` counts `expected`: for what the mail
    /// worker does in the background.
    pub async fn eventually(&self, sql: &str, expected: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let found = self.scalar(sql).await;
            if found == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql}: expected {expected}, still {found}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A timestamp `days` ago, as an SQL literal both backends compare correctly.
    pub fn days_ago(&self, days: i64) -> String {
        self.timestamp(chrono::Utc::now() - chrono::Duration::days(days))
    }

    /// `at` as an SQL timestamp literal for this backend.
    pub fn timestamp(&self, at: chrono::DateTime<chrono::Utc>) -> String {
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

impl TestApp {
    /// Fills in and sends the staff "Send invite" form.
    pub async fn send_invite(&self, email: &str, name: &str, phone: &str) -> Response {
        self.post_form(
            "/invites/send",
            &[("email", email), ("name", name), ("phone", phone)],
        )
        .await
    }

    /// Sends an invitation as staff and returns the code the result page shows.
    pub async fn send_invite_and_read_code(&self, email: &str, name: &str) -> String {
        let response = self.send_invite(email, name, "").await;
        assert_redirects_to(&response, "/invites/sent");
        code_on_page(&self.get_html("/invites/sent").await)
    }
}

/// Undoes Tera's escaping of `/` and `&` (in links), for readable assertions.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/").replace("&amp;", "&")
}

/// The code a result page shows once (`#invite-code`).
pub fn code_on_page(html: &str) -> String {
    let start = html
        .find("id=\"invite-code\">")
        .unwrap_or_else(|| panic!("no code on the page:\n{html}"))
        + "id=\"invite-code\">".len();
    html[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The code in a mail's login link (`…/accounts/login?code=CODE`).
pub fn code_in_mail(text: &str) -> String {
    let start = text
        .find("/accounts/login?code=")
        .unwrap_or_else(|| panic!("no login link in the mail:\n{text}"))
        + "/accounts/login?code=".len();
    text[start..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// One person's browser: a client with its own cookie jar, optionally
/// sending another Host header (to reach another site on the same server).
pub struct Browser {
    pub address: String,
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub host: Option<String>,
}

impl Browser {
    /// The same browser asking for another site (Host header).
    pub fn on_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.address));
        match &self.host {
            Some(host) => request.header(reqwest::header::HOST, host),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("body")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        cookie_in(&self.jar, &self.address, name)
    }

    /// The CSRF cookie, under its plain name or (https sites) its `__Host-` one.
    fn csrf_cookie(&self) -> Option<String> {
        self.cookie("gatehouse_csrf")
            .or_else(|| self.cookie("__Host-gatehouse_csrf"))
    }

    pub async fn csrf_token(&self) -> String {
        if let Some(token) = self.csrf_cookie() {
            return token;
        }
        let response = self.get("/accounts/login").await;
        assert_eq!(response.status(), StatusCode::OK);
        self.csrf_cookie()
            .expect("the login page sets the CSRF cookie")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.csrf_token().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.request(reqwest::Method::POST, path)
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

    /// A password login that answers the captcha question.
    pub async fn login_answering(&self, username: &str, password: &str, captcha: &str) -> Response {
        self.post_form(
            "/accounts/login",
            &[
                ("username", username),
                ("password", password),
                ("captcha", captcha),
            ],
        )
        .await
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

    pub async fn whoami(&self) -> Option<String> {
        let html = self.get_html("/").await;
        let start = html.find("Signed in as ")? + "Signed in as ".len();
        let rest = &html[start..];
        let end = rest.find(['<', ' ', '\n'])?;
        Some(rest[..end].to_owned())
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

/// The values of a page's hidden CSRF fields, in page order.
pub fn csrf_fields(html: &str) -> Vec<String> {
    let marker = "name=\"csrf_token\" value=\"";
    html.split(marker)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
        .collect()
}
