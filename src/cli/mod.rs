//! The `gatehouse` commands as library functions: each takes plain
//! arguments and returns what happened, with a `Display` that is what the
//! command prints. `main.rs` only parses arguments and prints.

pub mod import;
pub mod invite;
pub mod logging;
pub mod purge;
pub mod serve;
pub mod site;
pub mod terminal;
pub mod user;
pub mod visitor;

use std::sync::Arc;

use crate::AppState;
use crate::web::sites::Site;
use terminal::Terminal;

/// The site a command works on: the one named by `--domain`, the only one,
/// or (on a terminal) the one picked from a list.
pub async fn pick_site(
    state: &AppState,
    domain: Option<&str>,
    terminal: &Terminal,
) -> anyhow::Result<Arc<Site>> {
    let all = state.sites.all().await;
    let known = || {
        all.iter()
            .map(|site| site.domain.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(domain) = domain {
        return state.sites.by_domain(domain).await.ok_or_else(|| {
            anyhow::anyhow!(
                "A site with domain '{domain}' does not exist (known: {})",
                known()
            )
        });
    }
    if all.len() == 1 {
        return Ok(all[0].clone());
    }
    if !terminal.is_interactive() {
        anyhow::bail!(
            "Missing parameter --domain: there are several sites ({}), and {}",
            known(),
            terminal.why_not_asked()
        );
    }
    choose_site(&all, terminal)
}

fn choose_site(all: &[Arc<Site>], terminal: &Terminal) -> anyhow::Result<Arc<Site>> {
    for (index, site) in all.iter().enumerate() {
        terminal.say(&format!("[{}] {} ({})", index + 1, site.domain, site.name));
    }
    loop {
        let Some(answer) = terminal.ask("Select a site: ")? else {
            anyhow::bail!("No site selected");
        };
        if let Some(site) = answer
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| all.get(i))
        {
            return Ok(site.clone());
        }
        terminal.say(&format!("Enter a number from 1 to {}.", all.len()));
    }
}
