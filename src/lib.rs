//! Gatehouse: an invite-only community site. `Application::build` wires the
//! database, keys, templates and routes into a running server; `main.rs` is
//! only the command line around it.

pub mod accounts;
pub mod app;
pub mod attempts;
pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod dashboard;
pub mod dates;
pub mod db;
pub mod django_import;
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

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tera::Tera;

use crate::accounts::passwords::PasswordHasher;
use crate::mail::Mailer;
use crate::secrets::{Keys, SecretSource};
use crate::settings::Settings;
use crate::web::session_cache::SessionCache;
use crate::web::sites::SiteDirectory;

/// Everything handlers share, built once at start.
pub struct AppState {
    pub db: DatabaseConnection,
    /// SQLite connections apart from the pool, for statements sent together.
    pub lane: Arc<db::Lane>,
    pub settings: Arc<Settings>,
    pub keys: Keys,
    pub hasher: PasswordHasher,
    pub sites: SiteDirectory,
    pub templates: Tera,
    /// Visit log rows on their way to the database.
    pub visit_log: visitors::logs::VisitLog,
    pub mailer: Arc<Mailer>,
    /// Sessions read lately, kept until they change.
    pub sessions: SessionCache,
    /// Whether the login page should show the captcha, by address, lately.
    pub captcha_hints: accounts::gate::CaptchaHints,
    /// Pages as browsers with nothing of their own see them, by site.
    pub plain_pages: web::page::PlainPages,
}

impl AppState {
    /// Connects, migrates, resolves the secret and loads sites and templates:
    /// what both `serve` and the CLI commands need.
    pub async fn init(settings: Settings) -> anyhow::Result<(Self, SecretSource)> {
        let (secret, source) = secrets::resolve(&settings)?;
        let sessions = SessionCache::new(
            settings.sessions.cache_seconds,
            settings.sessions.cache_capacity,
        );
        let watched = web::session_feed::changes_written(&sessions);
        let db = db::connect_watching(&settings, watched)
            .await
            .map_err(|err| {
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
            captcha_hints: accounts::gate::CaptchaHints::default(),
            plain_pages: web::page::PlainPages::default(),
            sessions,
            db,
            lane: Arc::default(),
            sites,
            settings: Arc::new(settings),
        };
        Ok((state, source))
    }

    /// The zone dates are shown in (`server.time_zone`).
    pub fn zone(&self) -> dates::Zone {
        self.settings.server.time_zone
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

pub use db::redacted_url;

pub use app::Application;
