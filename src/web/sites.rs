//! Sites: which community a request is for, chosen by its Host header.
//! The table is small and rarely changes, so it is cached briefly in memory
//! and re-read every few seconds (so a `gatehouse site add` shows up without
//! a restart on every instance).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, QueryOrder,
};

use crate::entities::sites;
pub use crate::entities::sites::Model as Site;

const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The set of sites, with the default one used for unknown hosts.
pub struct SiteDirectory {
    db: DatabaseConnection,
    default_domain: String,
    cache: RwLock<Cached>,
}

struct Cached {
    loaded_at: Instant,
    sites: Arc<Vec<Arc<Site>>>,
}

impl SiteDirectory {
    /// Makes sure the default site (from `server.base_url`) exists and loads all sites.
    pub async fn load(
        db: DatabaseConnection,
        default_domain: String,
        default_name: &str,
    ) -> Result<Self, DbErr> {
        ensure_site(&db, &default_domain, default_name).await?;
        let sites = load_all(&db).await?;
        Ok(Self {
            db,
            default_domain,
            cache: RwLock::new(Cached {
                loaded_at: Instant::now(),
                sites,
            }),
        })
    }

    /// The site for a Host header value (port ignored); the default site when unknown.
    pub async fn for_host(&self, host: &str) -> Arc<Site> {
        let sites = self.current().await;
        let host = host_without_port(host);
        sites
            .iter()
            .find(|site| site.domain.eq_ignore_ascii_case(host))
            .or_else(|| sites.iter().find(|site| site.domain == self.default_domain))
            .or_else(|| sites.first())
            .cloned()
            .expect("the default site is created at start and never removed")
    }

    /// A site by its exact domain, for the CLI's `--domain`.
    pub async fn by_domain(&self, domain: &str) -> Option<Arc<Site>> {
        let sites = self.current().await;
        sites
            .iter()
            .find(|site| site.domain.eq_ignore_ascii_case(domain.trim()))
            .cloned()
    }

    pub async fn all(&self) -> Arc<Vec<Arc<Site>>> {
        self.current().await
    }

    pub fn default_domain(&self) -> &str {
        &self.default_domain
    }

    /// Re-reads the site list now (after `add`, in the same process).
    pub async fn refresh(&self) -> Result<(), DbErr> {
        let sites = load_all(&self.db).await?;
        let mut cached = self.cache.write().expect("site cache lock");
        *cached = Cached {
            loaded_at: Instant::now(),
            sites,
        };
        Ok(())
    }

    async fn current(&self) -> Arc<Vec<Arc<Site>>> {
        {
            let cached = self.cache.read().expect("site cache lock");
            if cached.loaded_at.elapsed() < REFRESH_EVERY {
                return cached.sites.clone();
            }
        }
        match load_all(&self.db).await {
            Ok(sites) => {
                let mut cached = self.cache.write().expect("site cache lock");
                *cached = Cached {
                    loaded_at: Instant::now(),
                    sites: sites.clone(),
                };
                sites
            }
            Err(err) => {
                // Serving with a slightly stale list beats failing the request.
                log::warn!("Could not refresh the site list, keeping the cached one: {err}");
                self.cache.read().expect("site cache lock").sites.clone()
            }
        }
    }
}

async fn load_all(db: &DatabaseConnection) -> Result<Arc<Vec<Arc<Site>>>, DbErr> {
    let sites = sites::Entity::find()
        .order_by_asc(sites::Column::Id)
        .all(db)
        .await?;
    Ok(Arc::new(sites.into_iter().map(Arc::new).collect()))
}

async fn ensure_site(db: &DatabaseConnection, domain: &str, name: &str) -> Result<(), DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let existing = sites::Entity::find()
        .filter(sites::Column::Domain.eq(domain))
        .one(db)
        .await?;
    if existing.is_none() {
        sites::ActiveModel {
            domain: Set(domain.to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(db)
        .await?;
        log::info!("Created the default site for {domain}.");
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum AddSiteError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("A site with domain '{0}' already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Adds a site (`gatehouse site add`, `gatehouse import django`). Running
/// servers see it within seconds (the directory re-reads the table).
pub async fn add(
    db: &impl sea_orm::ConnectionTrait,
    domain: &str,
    name: &str,
) -> Result<Site, AddSiteError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let domain = parse_domain(domain)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AddSiteError::Invalid(
            "Give the site a name of 1 to 100 characters",
        ));
    }
    let existing = sites::Entity::find()
        .filter(sites::Column::Domain.eq(domain.as_str()))
        .one(db)
        .await?;
    if existing.is_some() {
        return Err(AddSiteError::Exists(domain));
    }
    let site = sites::ActiveModel {
        domain: Set(domain.clone()),
        name: Set(name.to_owned()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|err| match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => AddSiteError::Exists(domain),
        _ => err.into(),
    })?;
    Ok(site)
}

/// A host name as the Host header carries it: lower case, no port or scheme.
pub fn parse_domain(input: &str) -> Result<String, AddSiteError> {
    let domain = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok {
        Ok(domain)
    } else {
        Err(AddSiteError::Invalid(
            "--domain must be a host name like club.example.org (no scheme, port or path)",
        ))
    }
}

/// The public address of a site, for links in mail: `server.base_url` for
/// the default site; for another site the same scheme and port with the
/// site's domain (the sites share one server behind the same proxy).
pub fn base_url_for(base_url: &str, default_domain: &str, site: &Site) -> String {
    let base = base_url.trim_end_matches('/');
    if site.domain.eq_ignore_ascii_case(default_domain) {
        return base.to_owned();
    }
    let mut url = match url::Url::parse(base) {
        Ok(url) => url,
        Err(_) => return format!("https://{}", site.domain),
    };
    match url.set_host(Some(&site.domain)) {
        Ok(()) => url.as_str().trim_end_matches('/').to_owned(),
        Err(_) => format!("https://{}", site.domain),
    }
}

/// `club.example.org:8443` → `club.example.org`; `[::1]:80` → `[::1]`.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// The domain of the default site: the host of `server.base_url`.
pub fn domain_of(base_url: &str) -> String {
    url::Url::parse(base_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_ignored_when_matching_hosts() {
        assert_eq!(
            host_without_port("club.example.org:8443"),
            "club.example.org"
        );
        assert_eq!(host_without_port("club.example.org"), "club.example.org");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(
            domain_of("https://club.example.org:8443/x"),
            "club.example.org"
        );
    }

    #[test]
    fn other_sites_get_links_on_their_own_domain() {
        let site = |domain: &str| Site {
            id: 1,
            domain: domain.into(),
            name: "Club".into(),
            created_at: chrono::Utc::now(),
        };
        let base = "https://main.example.org:8443/";
        assert_eq!(
            base_url_for(base, "main.example.org", &site("main.example.org")),
            "https://main.example.org:8443"
        );
        assert_eq!(
            base_url_for(base, "main.example.org", &site("tango.example.org")),
            "https://tango.example.org:8443"
        );
    }

    #[test]
    fn site_domains_are_plain_host_names() {
        assert_eq!(
            parse_domain(" Tango.Example.ORG. ").ok().as_deref(),
            Some("tango.example.org")
        );
        for bad in [
            "",
            "https://x.org",
            "x.org:8080",
            "x.org/path",
            "-x.org",
            "a..b",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad}");
        }
    }
}

/// The site this request is for, put into the request by `resolve`.
#[derive(Debug, Clone)]
pub struct CurrentSite(pub Arc<Site>);

impl actix_web::FromRequest for CurrentSite {
    type Error = crate::error::AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;
    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        std::future::ready(
            req.extensions()
                .get::<CurrentSite>()
                .cloned()
                .ok_or_else(|| {
                    crate::error::AppError::Internal(anyhow::anyhow!("site middleware missing"))
                }),
        )
    }
}

/// Middleware: picks the site from the Host header (or the host a trusted
/// proxy forwarded).
pub async fn resolve(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let state = crate::web::app_state(&req);
    let host =
        crate::web::client::requested_host(req.request(), &state.settings.server.trusted_proxies);
    let site = state.sites.for_host(&host).await;
    req.extensions_mut().insert(CurrentSite(site));
    next.call(req).await
}
