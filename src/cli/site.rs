//! `gatehouse site add|list`: the communities this installation serves.

use std::fmt;
use std::sync::Arc;

use crate::AppState;
use crate::settings::Settings;
use crate::web::sites::{self, AddSiteError, Site};

/// A site just added.
pub struct Added(pub Site);

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = &self.0;
        write!(
            f,
            "Added site {} ({}), id {}. Requests for that host name are served as this site.",
            site.domain, site.name, site.id
        )
    }
}

/// Adds a site: requests whose Host is `domain` are served as it.
pub async fn add(settings: Settings, domain: &str, name: &str) -> anyhow::Result<Added> {
    let (state, _) = AppState::init(settings).await?;
    let site = sites::add(&state.db, domain, name)
        .await
        .map_err(|err| match err {
            AddSiteError::Db(err) => anyhow::anyhow!(err),
            other => anyhow::anyhow!("{other}"),
        })?;
    Ok(Added(site))
}

/// One line of `gatehouse site list`.
pub struct Listed {
    pub site: Arc<Site>,
    pub is_default: bool,
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.is_default { " (default)" } else { "" };
        let site = &self.site;
        write!(f, "{}\t{}\t{}{default}", site.id, site.domain, site.name)
    }
}

/// Every site, the default one marked.
pub async fn list(settings: Settings) -> anyhow::Result<Vec<Listed>> {
    let (state, _) = AppState::init(settings).await?;
    let default_domain = state.sites.default_domain();
    Ok(state
        .sites
        .all()
        .await
        .iter()
        .map(|site| Listed {
            site: site.clone(),
            is_default: site.domain == default_domain,
        })
        .collect())
}
