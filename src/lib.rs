//! Gatehouse: an invite-only community site. `Application::build` wires the
//! database, keys, templates and routes into a running server; `main.rs` is
//! only the command line around it.

pub mod accounts;
pub mod attempts;
pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod dashboard;
pub mod dates;
pub mod db;
pub mod email_address;
pub mod entities;
pub mod error;
pub mod home;
pub mod invites;
pub mod mail;
pub mod purge;
pub mod references;
pub mod render;
pub mod secrets;
pub mod settings;
pub mod visitors;
pub mod web;

use std::net::TcpListener;
use std::sync::Arc;

use actix_identity::IdentityMiddleware;
use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_web::cookie::{SameSite, time::Duration as CookieDuration};
use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::web::{Data, FormConfig, PathConfig, QueryConfig, ServiceConfig};
use actix_web::{App, HttpServer};
use sea_orm::DatabaseConnection;
use tera::Tera;

use crate::accounts::passwords::PasswordHasher;
use crate::error::AppError;
use crate::mail::Mailer;
use crate::mail::worker::{self, WorkerHandle};
use crate::secrets::{Keys, SecretSource};
use crate::settings::Settings;
use crate::web::sessions::DbSessionStore;
use crate::web::sites::SiteDirectory;

/// Everything handlers share, built once at start.
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub keys: Keys,
    pub hasher: PasswordHasher,
    pub sites: SiteDirectory,
    pub templates: Tera,
    /// Visit log rows on their way to the database.
    pub visit_log: visitors::logs::VisitLog,
    pub mailer: Arc<Mailer>,
}

impl AppState {
    /// Connects, migrates, resolves the secret and loads sites and templates:
    /// what both `serve` and the CLI commands need.
    pub async fn init(settings: Settings) -> anyhow::Result<(Self, SecretSource)> {
        let (secret, source) = secrets::resolve(&settings)?;
        let db = db::connect(&settings).await.map_err(|err| {
            anyhow::anyhow!(
                "could not open the database {}: {err}",
                redacted_url(&settings.database.url)
            )
        })?;
        db::migrate(&db).await?;
        let sites = SiteDirectory::load(
            db.clone(),
            web::sites::domain_of(&settings.server.base_url),
            &settings.server.site_name,
        )
        .await?;
        let keys = Keys::derive(&secret);
        let state = Self {
            mailer: Arc::new(Mailer::new(&settings.mail, &keys)?),
            keys,
            hasher: PasswordHasher::new(&settings.passwords)?,
            templates: render::load()?,
            visit_log: visitors::logs::VisitLog::default(),
            db,
            sites,
            settings: Arc::new(settings),
        };
        Ok((state, source))
    }

    /// The public address of a site (no trailing slash), for links in mail.
    pub fn base_url_of(&self, site: &web::sites::Site) -> String {
        web::sites::base_url_for(
            &self.settings.server.base_url,
            self.sites.default_domain(),
            site,
        )
    }
}

/// A database URL with any password hidden, for messages.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A built server, bound to its port but not yet running, with its mail
/// worker already delivering.
pub struct Application {
    port: u16,
    server: Server,
    state: Data<AppState>,
    mail_worker: WorkerHandle,
}

impl Application {
    /// Binds `server.bind` (port 0 picks a free port) and builds the server.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, |_| {}).await
    }

    /// As `build`, with extra routes (e.g. an embedding application's own
    /// visitor-guarded views) configured after Gatehouse's own.
    pub async fn build_with(
        settings: Settings,
        extra_routes: impl Fn(&mut ServiceConfig) + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let (state, source) = AppState::init(settings).await?;
        match source {
            SecretSource::Generated(path) => {
                log::info!("Generated a new secret key in {}.", path.display());
            }
            SecretSource::Ephemeral => log::warn!(
                "No secret_key is set and the database is in memory: using a temporary key."
            ),
            SecretSource::Settings | SecretSource::File(_) => {}
        }
        Self::from_state(state, Arc::new(extra_routes))
    }

    fn from_state(state: AppState, extra_routes: Arc<ExtraRoutes>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&state.settings.server.bind).map_err(|err| {
            anyhow::anyhow!("could not listen on {}: {err}", state.settings.server.bind)
        })?;
        let port = listener.local_addr()?.port();
        state.visit_log.start_writer(state.db.clone());
        let state = Data::new(state);
        let server = run(listener, state.clone(), extra_routes)?;
        let mail_worker = worker::spawn(state.db.clone(), state.mailer.clone());
        Ok(Self {
            port,
            server,
            state,
            mail_worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    /// Runs until SIGTERM/SIGINT (actix-server shuts down gracefully on
    /// both), then writes the visit log rows still queued and stops the mail
    /// worker after the message in hand.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.state.visit_log.flush().await;
        let wait = std::time::Duration::from_secs(self.state.settings.mail.timeout_secs + 5);
        self.mail_worker.stop(wait).await;
        result
    }
}

type ExtraRoutes = dyn Fn(&mut ServiceConfig) + Send + Sync;

fn run(
    listener: TcpListener,
    state: Data<AppState>,
    extra_routes: Arc<ExtraRoutes>,
) -> std::io::Result<Server> {
    let settings = state.settings.clone();
    let store = DbSessionStore::new(
        state.db.clone(),
        &settings.visitors.session_key,
        state.keys.session_key(),
    );
    let cookie_key = state.keys.cookie_key();
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let body_limit = settings.server.max_body_kb * 1024;
    let server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(store.clone(), cookie_key.clone())
            .cookie_name(settings.session_cookie_name())
            .cookie_secure(settings.is_https())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Signed)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(CookieDuration::days(settings.sessions.lifetime_days.into())),
            )
            .build();
        // Request order: logger → headers → error pages → site → NUL check →
        // visitor cookie lifetime → session → identity → CSRF (bound to the
        // session, so inside it) → current user → visitor link → session
        // visitor → handler.
        App::new()
            .app_data(state.clone())
            .app_data(
                FormConfig::default()
                    .limit(body_limit)
                    .error_handler(|err, _| bad_form(err)),
            )
            .app_data(QueryConfig::default().error_handler(|err, _| {
                log::debug!("Unreadable query string: {err}");
                AppError::BadRequest("The address has parameters we could not read.".into()).into()
            }))
            .app_data(PathConfig::default().error_handler(|_, _| AppError::NotFound.into()))
            .wrap(from_fn(visitors::middleware::restore))
            .wrap(from_fn(visitors::middleware::handle_link))
            .wrap(from_fn(web::auth::load_user))
            .wrap(from_fn(web::csrf::protect))
            .wrap(IdentityMiddleware::default())
            .wrap(sessions)
            .wrap(from_fn(visitors::middleware::session_cookie_lifetime))
            .wrap(from_fn(web::input::refuse_nul_bytes))
            .wrap(from_fn(web::sites::resolve))
            .wrap(from_fn(web::error_pages::error_pages))
            .wrap(security_headers())
            // Method and path only, tokens redacted: see web::access_log.
            .wrap(web::access_log::logger())
            .configure(home::routes)
            .configure(accounts::routes)
            .configure(visitors::routes)
            .configure(references::routes)
            .configure(invites::routes)
            // Every staff page, behind one guard.
            .service(
                actix_web::web::scope("/staff")
                    .wrap(from_fn(web::staff_guard::require_staff))
                    .configure(dashboard::staff_routes)
                    .configure(invites::staff_routes)
                    .configure(visitors::staff_routes)
                    .configure(mail::staff_routes)
                    .configure(audit::staff_routes),
            )
            .configure(|cfg| extra_routes(cfg))
            .default_service(actix_web::web::to(|| async {
                Err::<actix_web::HttpResponse, _>(AppError::NotFound)
            }))
    })
    .workers(workers)
    .listen(listener)?
    .run();
    Ok(server)
}

fn bad_form(err: actix_web::error::UrlencodedError) -> actix_web::Error {
    use actix_web::error::UrlencodedError;
    match err {
        UrlencodedError::Overflow { .. } => AppError::PayloadTooLarge.into(),
        UrlencodedError::ContentType => {
            AppError::BadRequest("This form must be sent by a browser as a normal web form.".into())
                .into()
        }
        other => {
            log::debug!("Unreadable form: {other}");
            AppError::BadRequest(
                "We could not read the form you sent. Go back, reload the page and try again."
                    .into(),
            )
            .into()
        }
    }
}

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
}
