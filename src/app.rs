//! The application: `Application` binds and runs the server; `routes` is the
//! middleware order and the whole route map, read top to bottom.

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

use crate::error::AppError;
use crate::mail::worker::{self, WorkerHandle};
use crate::secrets::SecretSource;
use crate::settings::Settings;
use crate::web::sessions::DbSessionStore;
use crate::{AppState, accounts, audit, dashboard, home, invites, mail, references, visitors, web};

/// A built server, bound to its port but not yet running, with its mail
/// worker already delivering.
pub struct Application {
    port: u16,
    server: Server,
    state: Data<AppState>,
    mail_worker: WorkerHandle,
    /// The scheduled purge (`purge.interval_minutes`), when on.
    purge_schedule: Option<tokio::task::JoinHandle<()>>,
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
        web::session_feed::start(&state.sessions, state.db.clone());
        let state = Data::new(state);
        let server = run(listener, state.clone(), extra_routes)?;
        let mail_worker = worker::spawn(state.db.clone(), state.mailer.clone());
        let purge_schedule = crate::purge::spawn_schedule(state.db.clone(), state.settings.clone());
        Ok(Self {
            port,
            server,
            state,
            mail_worker,
            purge_schedule,
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
        web::session_feed::say_goodbye(&self.state.sessions, &self.state.db).await;
        if let Some(schedule) = &self.purge_schedule {
            schedule.abort();
        }
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
        state.lane.clone(),
        &settings.visitors.session_key,
        state.keys.session_key(),
        state.sessions.clone(),
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
        let extra_routes = extra_routes.clone();
        // Request order: logger → headers → error pages → site → NUL check →
        // visitor cookie lifetime → settle writes (after the session is
        // saved, waits to hear its changes) → session → identity → CSRF
        // (bound to the session, so inside it) → current user → visitor
        // link → session visitor → handler.
        App::new()
            .app_data(state.clone())
            .configure(|cfg| input_limits(cfg, body_limit))
            .wrap(from_fn(visitors::middleware::restore))
            .wrap(from_fn(visitors::middleware::handle_link))
            .wrap(from_fn(web::auth::load_user))
            .wrap(from_fn(web::csrf::protect))
            .wrap(IdentityMiddleware::default())
            .wrap(sessions)
            .wrap(from_fn(web::sessions::hold_writes_for_new_row))
            .wrap(from_fn(web::session_feed::settle_writes))
            .wrap(from_fn(visitors::middleware::session_cookie_lifetime))
            .wrap(from_fn(web::input::refuse_nul_bytes))
            .wrap(from_fn(web::sites::resolve))
            .wrap(from_fn(web::error_pages::error_pages))
            .wrap(security_headers())
            // Method and path only, tokens redacted: see web::access_log.
            .wrap(web::access_log::logger())
            .configure(routes)
            .configure(move |cfg| extra_routes(cfg))
            .default_service(actix_web::web::to(|| async {
                Err::<actix_web::HttpResponse, _>(AppError::NotFound)
            }))
    })
    .workers(workers)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The route map: each capability's public routes, then the staff pages in
/// scopes behind the one staff guard.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.configure(home::routes)
        .configure(accounts::routes)
        .configure(visitors::routes)
        .configure(references::routes)
        .configure(invites::routes)
        .service(
            actix_web::web::scope("/invites/send")
                .wrap(from_fn(web::staff_guard::require_staff))
                .configure(invites::send_routes),
        )
        .service(
            actix_web::web::scope("/staff")
                .wrap(from_fn(web::staff_guard::require_staff))
                .configure(dashboard::staff_routes)
                .configure(invites::staff_routes)
                .configure(accounts::staff_routes)
                .configure(visitors::staff_routes)
                .configure(mail::staff_routes)
                .configure(audit::staff_routes),
        );
}

/// How big a form may be, and the answers for a form, query or path that
/// cannot be read.
fn input_limits(cfg: &mut ServiceConfig, body_limit: usize) {
    cfg.app_data(
        FormConfig::default()
            .limit(body_limit)
            .error_handler(|err, _| bad_form(err)),
    )
    .app_data(QueryConfig::default().error_handler(|err, _| {
        log::debug!("Unreadable query string: {err}");
        AppError::BadRequest("The address has parameters we could not read.".into()).into()
    }))
    .app_data(PathConfig::default().error_handler(|_, _| AppError::NotFound.into()));
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
