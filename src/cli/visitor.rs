//! `gatehouse visitor create`: a visitor pass, handed over as a link.

use std::fmt;

use chrono::{DateTime, Utc};

use super::pick_site;
use super::terminal::Terminal;
use crate::AppState;
use crate::email_address::EmailAddress;
use crate::settings::Settings;
use crate::visitors::{self, NewVisitor, Scope, tokens};

/// `gatehouse visitor create`.
#[derive(clap::Args)]
pub struct VisitorCreateArgs {
    /// What the link opens, e.g. "demo" or "REFERENCE_REQUEST" (up to 100
    /// characters, no spaces; compared exactly).
    #[arg(long)]
    pub scope: String,
    /// The visitor's e-mail address.
    #[arg(long)]
    pub email: String,
    #[arg(long, default_value = "")]
    pub first_name: String,
    #[arg(long, default_value = "")]
    pub last_name: String,
    /// Days the link works (default: visitors.token_expiry_days).
    #[arg(long)]
    pub expires_in_days: Option<u32>,
    /// Seconds an anonymous visitor session lasts after the link is used;
    /// 0 = until the browser closes (default: visitors.session_expiry_secs).
    #[arg(long)]
    pub session_expiry: Option<u32>,
    /// Page the link opens (default: /visitors/demo for scope demo, else /).
    #[arg(long)]
    pub path: Option<String>,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    pub domain: Option<String>,
}

/// A pass just made; its `Display` ends with the link on a line of its own.
pub struct Pass {
    pub id: String,
    pub full_name: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
    /// The zone `expires_at` is shown in.
    pub zone: crate::dates::Zone,
    pub link: String,
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Visitor pass {} for {} (scope {}), valid until {}.",
            self.id,
            self.full_name,
            self.scope,
            self.zone
                .format(self.expires_at, crate::dates::DateStyle::Stamp)
        )?;
        write!(f, "{}", self.link)
    }
}

/// Makes a visitor pass and its tokenised link.
pub async fn create(settings: Settings, args: VisitorCreateArgs) -> anyhow::Result<Pass> {
    let scope = Scope::parse(&args.scope).map_err(|err| anyhow::anyhow!("--scope: {err}"))?;
    let email =
        EmailAddress::parse(&args.email).map_err(|err| anyhow::anyhow!("--email: {err}"))?;
    let path = args.path.unwrap_or_else(|| match scope.as_str() {
        "demo" => "/visitors/demo".to_owned(),
        _ => "/".to_owned(),
    });
    if crate::web::auth::safe_next(Some(&path)).is_none() {
        anyhow::bail!("--path must be a path on this site, starting with /");
    }
    let days = args
        .expires_in_days
        .unwrap_or(settings.visitors.token_expiry_days);
    if days == 0 {
        anyhow::bail!("--expires-in-days must be at least 1");
    }
    let session_expiry = args
        .session_expiry
        .unwrap_or(settings.visitors.session_expiry_secs);
    if session_expiry > crate::settings::MAX_VISITOR_SESSION_SECS {
        anyhow::bail!(
            "--session-expiry must be at most {} (a year)",
            crate::settings::MAX_VISITOR_SESSION_SECS
        );
    }
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), &Terminal::none()).await?;
    let (visitor, token) = visitors::create(
        &state.db,
        NewVisitor {
            site_id: site.id,
            scope,
            first_name: args.first_name,
            last_name: args.last_name,
            email,
            context: None,
            valid_for: chrono::Duration::days(days.into()),
            session_expiry_secs: session_expiry.into(),
            created_by: None,
        },
    )
    .await?;
    let link = tokens::tokenise(
        &format!("{}{path}", state.base_url_of(&site)),
        &state.settings.visitors.querystring_key,
        &token,
    );
    Ok(Pass {
        full_name: visitors::full_name(&visitor),
        id: visitor.id,
        scope: visitor.scope,
        expires_at: visitor.expires_at,
        zone: state.zone(),
        link,
    })
}
