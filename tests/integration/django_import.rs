//! `gatehouse import django`: a mezzanine-invites / django-visitors database,
//! built here from the documented old schemas (shared/seeds), on SQLite and
//! on PostgreSQL (a second database on the test cluster), imported into a
//! fresh Gatehouse; then old codes, links and passwords are used.

use argon2::PasswordHasher as _;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use gatehouse::django_import::{self, Options, Report, Silently, tables};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sha2::Digest;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_redirects_to, spawn_app};
use crate::support::postgres as cluster;

/// The old database and how to write literals for it.
pub struct DjangoDb {
    db: DatabaseConnection,
    pub url: String,
    backend: Backend,
}

const SQLITE_SCHEMA: &str = include_str!("../fixtures/django_sqlite_schema.sql");

const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE django_site (id serial PRIMARY KEY, domain varchar(100) NOT NULL UNIQUE,
  name varchar(50) NOT NULL);
CREATE TABLE auth_user (id serial PRIMARY KEY, password varchar(128) NOT NULL,
  last_login timestamp with time zone NULL, is_superuser boolean NOT NULL,
  username varchar(150) NOT NULL UNIQUE, first_name varchar(150) NOT NULL,
  last_name varchar(150) NOT NULL, email varchar(254) NOT NULL, is_staff boolean NOT NULL,
  is_active boolean NOT NULL, date_joined timestamp with time zone NOT NULL);
CREATE TABLE invites_invitationcode (id serial PRIMARY KEY,
  created_date timestamp with time zone NOT NULL, registered_to varchar(75) NOT NULL,
  registered_name varchar(70) NULL, registered_phone varchar(20) NULL,
  registered_date timestamp with time zone NULL, key varchar(30) NULL,
  expired boolean NOT NULL, created_by_id integer NULL REFERENCES auth_user (id),
  site_id integer NOT NULL REFERENCES django_site (id), UNIQUE (site_id, key));
CREATE TABLE visitors_visitor (id serial PRIMARY KEY, uuid uuid NOT NULL UNIQUE,
  first_name varchar(150) NOT NULL, last_name varchar(150) NOT NULL,
  email varchar(254) NOT NULL, scope varchar(100) NOT NULL,
  created_at timestamp with time zone NOT NULL, context jsonb NULL,
  last_updated_at timestamp with time zone NOT NULL,
  expires_at timestamp with time zone NULL, is_active boolean NOT NULL,
  session_expiry integer NOT NULL CHECK (session_expiry >= 0));
CREATE TABLE visitors_visitorlog (id serial PRIMARY KEY, session_key varchar(40) NOT NULL,
  http_method varchar(10) NOT NULL, request_uri varchar(200) NOT NULL,
  remote_addr varchar(100) NOT NULL, query_string text NOT NULL,
  http_user_agent text NOT NULL, http_referer text NOT NULL,
  timestamp timestamp with time zone NOT NULL,
  visitor_id integer NOT NULL REFERENCES visitors_visitor (id),
  status_code integer NOT NULL CHECK (status_code >= 0));
"#;

impl DjangoDb {
    /// An empty Django database with the old apps' tables, beside `app`'s
    /// (a file in its directory, or a new database on the same cluster).
    pub async fn create(app: &TestApp) -> Self {
        let url = match app.backend {
            Backend::Sqlite => {
                let path = app.dir.path().join("django.sqlite3");
                format!("sqlite://{}", path.display())
            }
            Backend::Postgres => cluster::fresh_database_url()
                .await
                .expect("the cluster is running: the app uses it"),
        };
        let connect = match app.backend {
            Backend::Sqlite => format!("{url}?mode=rwc"),
            Backend::Postgres => url.clone(),
        };
        let db = Database::connect(connect).await.expect("django database");
        let schema = match app.backend {
            Backend::Sqlite => SQLITE_SCHEMA,
            Backend::Postgres => POSTGRES_SCHEMA,
        };
        db.execute_unprepared(schema).await.expect("schema");
        Self {
            db,
            url,
            backend: app.backend,
        }
    }

    pub async fn execute(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// A datetime literal as Django stores it.
    pub fn at(&self, at: DateTime<Utc>) -> String {
        match self.backend {
            Backend::Sqlite => format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f")),
            Backend::Postgres => format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f+00")),
        }
    }

    pub fn flag(&self, value: bool) -> &'static str {
        match (self.backend, value) {
            (Backend::Sqlite, true) => "1",
            (Backend::Sqlite, false) => "0",
            (Backend::Postgres, true) => "true",
            (Backend::Postgres, false) => "false",
        }
    }

    /// A UUID as Django stores it: 32 hex digits on SQLite, `uuid` on PostgreSQL.
    pub fn uuid(&self, uuid: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("'{}'", uuid.replace('-', "")),
            Backend::Postgres => format!("'{uuid}'"),
        }
    }

    pub async fn add_user(&self, id: i64, username: &str, email: &str, password: &str) {
        let joined = self.at(Utc::now() - Duration::days(400));
        self.execute(&format!(
            "INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, \
             last_name, email, is_staff, is_active, date_joined) VALUES ({id}, '{password}', NULL, \
             {f}, '{username}', 'First{id}', 'Last{id}', '{email}', {staff}, {t}, {joined})",
            f = self.flag(false),
            t = self.flag(true),
            staff = self.flag(id == 1),
        ))
        .await;
    }

    #[expect(clippy::too_many_arguments, reason = "one column each")]
    pub async fn add_code(
        &self,
        id: i64,
        site: i64,
        code: &str,
        email: &str,
        created: DateTime<Utc>,
        registered: Option<DateTime<Utc>>,
        expired: bool,
        created_by: Option<i64>,
    ) {
        let registered = registered.map_or("NULL".to_owned(), |at| self.at(at));
        let created_by = created_by.map_or("NULL".to_owned(), |id| id.to_string());
        self.execute(&format!(
            "INSERT INTO invites_invitationcode (id, created_date, registered_to, registered_name, \
             registered_phone, registered_date, key, expired, created_by_id, site_id) VALUES \
             ({id}, {}, '{email}', 'Professor Plum', NULL, {registered}, '{site}-{code}', {}, \
             {created_by}, {site})",
            self.at(created),
            self.flag(expired),
        ))
        .await;
    }

    #[expect(clippy::too_many_arguments, reason = "one column each")]
    pub async fn add_visitor(
        &self,
        id: i64,
        uuid: &str,
        scope: &str,
        email: &str,
        created: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
        active: bool,
        context: &str,
    ) {
        let expires = expires.map_or("NULL".to_owned(), |at| self.at(at));
        self.execute(&format!(
            "INSERT INTO visitors_visitor (id, uuid, first_name, last_name, email, scope, \
             created_at, context, last_updated_at, expires_at, is_active, session_expiry) VALUES \
             ({id}, {}, 'Ginger', 'Rogers', '{email}', '{scope}', {created}, '{context}', \
             {created}, {expires}, {}, 600)",
            self.uuid(uuid),
            self.flag(active),
            created = self.at(created),
        ))
        .await;
    }

    pub async fn add_log(&self, id: i64, visitor: i64, session_key: &str, referer: &str) {
        self.execute(&format!(
            "INSERT INTO visitors_visitorlog (id, session_key, http_method, request_uri, \
             remote_addr, query_string, http_user_agent, http_referer, timestamp, visitor_id, \
             status_code) VALUES ({id}, '{session_key}', 'GET', '/visitors/demo', \
             '203.0.113.9, 10.0.0.1', 'vuid=secret', 'Mozilla/5.0', '{referer}', {}, {visitor}, 200)",
            self.at(Utc::now() - Duration::days(1)),
        ))
        .await;
    }
}

/// Django's `make_password(password, salt, "pbkdf2_sha256")` with few
/// iterations (the real default, 1 000 000, is slow on purpose).
pub fn pbkdf2_sha256(password: &str, salt: &str) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), 1000, &mut out);
    let encoded = base64::engine::general_purpose::STANDARD.encode(out);
    format!("pbkdf2_sha256$1000${salt}${encoded}")
}

/// Django's Argon2PasswordHasher: "argon2" + the PHC string.
fn django_argon2(password: &str) -> String {
    let params = argon2::Params::new(1024, 1, 1, None).expect("params");
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    format!(
        "argon2{}",
        hasher.hash_password(password.as_bytes()).expect("hash")
    )
}

/// Django's BCryptSHA256PasswordHasher: bcrypt of the SHA-256 hex digest.
fn django_bcrypt_sha256(password: &str) -> String {
    let digest = hex::encode(sha2::Sha256::digest(password.as_bytes()));
    format!("bcrypt_sha256${}", bcrypt::hash(digest, 4).expect("bcrypt"))
}

const DEMO_LINK: &str = "68201321-9dd2-4fb3-92b1-24367f38a7d6";
const OLD_LINK: &str = "0b7c5e4e-2b1f-4f53-9d0e-6a1c3f8e9d21";

/// The old site: members with each kind of hash, codes in each state,
/// visitors and their logs, and one bad row in each table.
async fn fill(old: &DjangoDb) {
    let now = Utc::now();
    old.execute("INSERT INTO django_site (id, domain, name) VALUES (1, 'example.com', 'Old club')")
        .await;
    old.add_user(
        1,
        "fred",
        "Fred@Example.org",
        &pbkdf2_sha256("fred's old password", "s4lt"),
    )
    .await;
    old.add_user(
        2,
        "ginger",
        "ginger@example.org",
        &django_argon2("ginger's old password"),
    )
    .await;
    old.add_user(
        3,
        "bob",
        "bob@example.org",
        &django_bcrypt_sha256("bob's old password"),
    )
    .await;
    old.add_user(4, "olive", "olive@example.org", "md5$salt$0123456789abcdef")
        .await;
    old.add_user(5, "broken", "not-an-email", "!unusable").await;
    old.add_user(6, "plum@example.org", "plum@example.org", "!unusable")
        .await;

    let day = Duration::days(1);
    old.add_code(
        1,
        1,
        "ABCDEF234",
        "new@example.org",
        now - day,
        None,
        false,
        Some(1),
    )
    .await;
    old.add_code(
        2,
        1,
        "GHJKMP345",
        "plum@example.org",
        now - day * 3,
        Some(now - day * 2),
        false,
        None,
    )
    .await;
    old.add_code(
        3,
        1,
        "QRSTUV456",
        "late@example.org",
        now - day * 60,
        None,
        true,
        None,
    )
    .await;
    old.add_code(
        4,
        1,
        "ABC10",
        "odd@example.org",
        now - day,
        None,
        false,
        None,
    )
    .await;

    let context = r#"{"reference": 7}"#;
    old.add_visitor(
        1,
        DEMO_LINK,
        "demo",
        "ginger@example.org",
        now - day,
        Some(now + day),
        true,
        context,
    )
    .await;
    // No expiry: created_at + 300 s, long gone.
    old.add_visitor(
        2,
        OLD_LINK,
        "REFERENCE_REQUEST",
        "ref@example.org",
        now - day,
        None,
        true,
        "null",
    )
    .await;
    let spaced = "8d3f1e2a-1111-4c2b-9a0e-2f0c1d9e8b7a";
    old.add_visitor(
        3,
        spaced,
        "two words",
        "x@example.org",
        now - day,
        Some(now + day),
        true,
        "null",
    )
    .await;
    let placeholder = "5c1d2e3f-2222-4a4b-8c5d-6e7f8a9b0c1d";
    let self_service = r#"{"self-service": true, "redirect_to": "/bar"}"#;
    old.add_visitor(
        4,
        placeholder,
        "bar",
        "anon@example.com",
        now,
        Some(now + day),
        false,
        self_service,
    )
    .await;

    let referer = format!("https://example.com/visitors/demo?vuid={DEMO_LINK}&x=1");
    old.add_log(1, 1, "k3y0fthes3ss10n", &referer).await;
    old.add_log(2, 1, "", "").await;
    old.add_log(3, 1, "k3y0fthes3ss10n", "").await;
    old.add_log(4, 3, "other", "").await;
}

async fn import(app: &TestApp, old: &DjangoDb, dry_run: bool) -> Report {
    let options = Options {
        database: old.url.clone(),
        dry_run,
        site_map: Vec::new(),
    };
    django_import::import(&app.state, &options, &Silently)
        .await
        .expect("the import runs")
}

fn counts(report: &Report) -> Vec<(&'static str, u64, u64, u64)> {
    report
        .tables
        .iter()
        .map(|table| {
            (
                table.table,
                table.read,
                table.imported,
                table.skipped_count(),
            )
        })
        .collect()
}

async fn row_counts(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["users", "invites", "visitors", "visitor_logs", "sites"] {
        counts.push(app.scalar(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts
}

async fn an_old_site_moves_in_and_its_codes_links_and_passwords_keep_working(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let old = DjangoDb::create(&app).await;
    fill(&old).await;
    let empty = row_counts(&app).await;

    // A dry run reads and reports everything, and writes nothing.
    let dry = import(&app, &old, true).await;
    assert!(dry.dry_run);
    assert_eq!(row_counts(&app).await, empty, "a dry run writes nothing");

    let report = import(&app, &old, false).await;
    let expected = vec![
        (tables::SITES, 1, 0, 0),
        (tables::MEMBERS, 6, 5, 1),
        (tables::CODES, 4, 3, 1),
        (tables::VISITORS, 4, 2, 2),
        (tables::LOGS, 4, 3, 1),
    ];
    assert_eq!(counts(&report), expected, "{report}");
    assert_eq!(counts(&dry), expected, "the dry run said the same:\n{dry}");
    let members = report.table(tables::MEMBERS).expect("members");
    assert_eq!(
        members.skipped_for("the e-mail address is not valid"),
        1,
        "{report}"
    );
    assert_eq!(
        members.noted(&format!(
            "{} (md5 hashes are not supported)",
            tables::MUST_RESET
        )),
        1,
        "{report}"
    );
    let codes = report.table(tables::CODES).expect("codes");
    assert_eq!(codes.skipped_for(tables::CODE_BAD_FORMAT), 1, "{report}");
    assert_eq!(codes.noted(tables::CODE_REVOKED), 1, "{report}");
    let visitors = report.table(tables::VISITORS).expect("visitors");
    assert_eq!(visitors.skipped_for(tables::PLACEHOLDER), 1, "{report}");
    assert_eq!(
        report
            .table(tables::SITES)
            .expect("sites")
            .noted(tables::MAPPED),
        1
    );
    let text = report.to_string();
    assert!(
        text.contains("auth_user: 1 × the e-mail address is not valid (id 5)"),
        "{text}"
    );
    assert!(
        text.contains("Django site 1 (example.com) → 127.0.0.1"),
        "{text}"
    );

    // Only hashes were stored: no code, link token or session key.
    let dump = app.database_dump().await;
    for secret in [
        "ABCDEF234",
        "GHJKMP345",
        DEMO_LINK,
        "68201321",
        "k3y0fthes3ss10n",
        "vuid=secret",
    ] {
        assert!(!dump.contains(secret), "{secret} is in the database");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM visitor_logs WHERE referer LIKE '%vuid%'")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM visitor_logs WHERE remote_addr = '203.0.113.9'")
            .await,
        3
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE username = 'olive' AND password_hash IS NULL")
            .await,
        1,
        "an unverifiable hash leaves the member to reset their password"
    );

    // A second run changes nothing.
    let before = row_counts(&app).await;
    let again = import(&app, &old, false).await;
    assert_eq!(again.imported(), 0, "{again}");
    assert_eq!(row_counts(&app).await, before);
    assert_eq!(
        again
            .table(tables::MEMBERS)
            .expect("members")
            .skipped_for(tables::MEMBER_ALREADY_HERE),
        5,
        "{again}"
    );
    assert_eq!(
        again
            .table(tables::LOGS)
            .expect("logs")
            .skipped_for(tables::LOG_ALREADY_HERE),
        3,
        "{again}"
    );

    old_credentials_work(&app).await;
    // And after logins re-hashed passwords, a third run still changes nothing.
    let hashes = app
        .scalar("SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$%'")
        .await;
    assert_eq!(import(&app, &old, false).await.imported(), 0);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$%'")
            .await,
        hashes
    );
}

async fn old_credentials_work(app: &TestApp) {
    // An unused old code makes its member; a used one logs its member in;
    // one that had expired there does not.
    let browser = app.new_browser();
    assert_redirects_to(&browser.login_with_code("abc-def-234").await, "/");
    assert_eq!(browser.whoami().await.as_deref(), Some("new@example.org"));
    let browser = app.new_browser();
    assert_redirects_to(&browser.login_with_code("GHJKMP345").await, "/");
    assert_eq!(browser.whoami().await.as_deref(), Some("plum@example.org"));
    let browser = app.new_browser();
    let refused = browser.login_with_code("QRSTUV456").await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.expect("body").contains("no longer"));
    assert_eq!(browser.whoami().await, None);

    // An old visitor link enters its scope; the one without expiry had 300 s.
    let browser = app.new_browser();
    let entered = browser
        .follow_link(&format!("/visitors/demo?vuid={DEMO_LINK}"))
        .await;
    assert_eq!(entered.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(browser.get_html("/visitors/demo").await.contains("Ginger"));
    let html = app
        .new_browser()
        .get_html(&format!("/?vuid={OLD_LINK}"))
        .await;
    assert!(!html.contains("Continue as"), "{html}");

    // Old passwords log in, and are re-hashed with argon2id on the way.
    for (username, password) in [
        ("fred", "fred's old password"),
        ("ginger", "ginger's old password"),
        ("bob", "bob's old password"),
    ] {
        let browser = app.new_browser();
        assert_redirects_to(&browser.login_with_password(username, password).await, "/");
        assert_eq!(browser.whoami().await.as_deref(), Some(username));
        let rehashed = app
            .scalar(&format!(
                "SELECT COUNT(*) FROM users WHERE username = '{username}' \
                 AND password_hash LIKE '$argon2id$%'"
            ))
            .await;
        assert_eq!(rehashed, 1, "{username}'s hash was upgraded");
        // The new hash works; a wrong password still does not.
        let browser = app.new_browser();
        assert_redirects_to(&browser.login_with_password(username, password).await, "/");
        let wrong = app
            .new_browser()
            .login_with_password(username, "not it at all")
            .await;
        assert_eq!(wrong.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    }
}

/// Several old sites and one here: nothing is written until each is mapped.
async fn an_unmatched_old_site_stops_the_import_before_anything_is_written(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let old = DjangoDb::create(&app).await;
    fill(&old).await;
    old.execute("INSERT INTO django_site (id, domain, name) VALUES (2, 'two.example.org', 'Two')")
        .await;
    let now = Utc::now();
    old.add_code(5, 2, "ABCDEF234", "two@example.org", now, None, false, None)
        .await;
    let empty = row_counts(&app).await;
    let options = Options {
        database: old.url.clone(),
        dry_run: false,
        site_map: Vec::new(),
    };
    let err = django_import::import(&app.state, &options, &Silently)
        .await
        .expect_err("two old sites, one here");
    assert!(
        err.to_string().contains("--site-map OLD_ID=DOMAIN"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("1 (example.com), 2 (two.example.org)"),
        "{err}"
    );
    assert_eq!(row_counts(&app).await, empty);

    let options = Options {
        site_map: vec![(1, "127.0.0.1".into()), (2, "two.example.org".into())],
        ..options
    };
    let report = django_import::import(&app.state, &options, &Silently)
        .await
        .expect("mapped");
    assert_eq!(
        report.table(tables::SITES).expect("sites").imported,
        1,
        "{report}"
    );
    // The same code on two old sites is two invitations, one per site here.
    assert_eq!(
        report.table(tables::CODES).expect("codes").imported,
        4,
        "{report}"
    );
    let browser = app.browser().on_host("two.example.org");
    assert_redirects_to(&browser.login_with_code("ABCDEF234").await, "/");
    assert_eq!(browser.whoami().await.as_deref(), Some("two@example.org"));
    // Members are on both sites.
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE username = 'fred'")
            .await,
        2
    );

    // A source that is not there is an error, not an empty import.
    let missing = Options {
        database: "sqlite:///nonexistent/django.sqlite3".into(),
        dry_run: true,
        site_map: Vec::new(),
    };
    let err = django_import::import(&app.state, &missing, &Silently)
        .await
        .expect_err("no such file");
    assert!(err.to_string().contains("no SQLite database"), "{err}");
}

backend_tests!(
    an_old_site_moves_in_and_its_codes_links_and_passwords_keep_working,
    an_unmatched_old_site_stops_the_import_before_anything_is_written,
);

/// The command itself: the report on stdout, errors on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_prints_the_report_and_refuses_a_bad_site_map() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let old = DjangoDb::create(&app).await;
    fill(&old).await;
    let gatehouse = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE__DATABASE__URL", &app.state.settings.database.url)
            .env("GATEHOUSE__SERVER__BASE_URL", "http://127.0.0.1:8080")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) =
        gatehouse(&["import", "django", "--database", &old.url, "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("dry run: nothing was written"), "{stdout}");
    assert!(stdout.contains("visitors_visitorlog"), "{stdout}");
    assert!(stdout.contains("rows would be imported"), "{stdout}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 0);
    let (ok, _, stderr) = gatehouse(&[
        "import",
        "django",
        "--database",
        &old.url,
        "--site-map",
        "1:example.com",
    ]);
    assert!(!ok);
    assert!(stderr.contains("write OLD_ID=DOMAIN"), "{stderr}");
}
