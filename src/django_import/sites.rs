//! Which Gatehouse site each Django site (`django_site`) becomes: the one
//! `--site-map OLD_ID=DOMAIN` names (made when no site has that domain), the
//! one with the same domain, or — when each side has exactly one site — the
//! other side's only one. Anything left unmatched stops the import before
//! anything is written.

use std::collections::BTreeMap;

use crate::web::sites::{Site, host_without_port, parse_domain};

/// A site of the Django database.
#[derive(Debug, Clone)]
pub struct OldSite {
    pub id: i64,
    pub domain: String,
    pub name: String,
}

/// Where rows of an old site go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Existing {
        id: i64,
        domain: String,
    },
    /// To be created by the import, with this domain and name.
    New {
        domain: String,
        name: String,
    },
}

impl Target {
    pub fn domain(&self) -> &str {
        match self {
            Self::Existing { domain, .. } | Self::New { domain, .. } => domain,
        }
    }
}

/// The targets (each once, in order) and which old site goes to which.
#[derive(Debug, Clone)]
pub struct SiteMap {
    pub targets: Vec<Target>,
    /// Old site id → index into `targets`.
    pub of_old: BTreeMap<i64, usize>,
    /// The target members and visitors go to when no old site says (Django's
    /// default `SITE_ID = 1`, else the first old site).
    pub main: usize,
    /// How each old site was matched, for the report.
    pub lines: Vec<String>,
}

impl SiteMap {
    pub fn target_of(&self, old_site: i64) -> Option<usize> {
        self.of_old.get(&old_site).copied()
    }
}

/// `OLD_ID=DOMAIN`, as `--site-map` takes it.
pub fn parse_site_map_entry(value: &str) -> Result<(i64, String), String> {
    let (id, domain) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?}: write OLD_ID=DOMAIN, e.g. 1=club.example.org"))?;
    let id = id
        .trim()
        .parse()
        .map_err(|_| format!("{value:?}: the old site id must be a number"))?;
    let domain = parse_domain(domain)
        .map_err(|_| format!("{value:?}: the domain must be a host name like club.example.org"))?;
    Ok((id, domain))
}

/// Matches every old site, or says which are unmatched and how to fix it.
/// `default_site` is where everything goes when the Django database has no
/// sites table (a django-visitors project without `django.contrib.sites`).
pub fn match_sites(
    old: &[OldSite],
    ours: &[Site],
    default_site: &Site,
    given: &[(i64, String)],
) -> Result<SiteMap, String> {
    for (id, _) in given {
        if !old.iter().any(|site| site.id == *id) {
            return Err(format!(
                "--site-map names old site {id}, which the Django database does not have"
            ));
        }
    }
    let mut map = SiteMap {
        targets: Vec::new(),
        of_old: BTreeMap::new(),
        main: 0,
        lines: Vec::new(),
    };
    if old.is_empty() {
        map.targets.push(existing(default_site));
        map.lines.push(format!(
            "The Django database has no sites: everything goes to {}.",
            default_site.domain
        ));
        return Ok(map);
    }
    let mut unmatched = Vec::new();
    for site in old {
        let Some((target, how)) = target_for(site, old.len(), ours, given) else {
            unmatched.push(site);
            continue;
        };
        map.lines.push(format!(
            "Django site {} ({}) → {} ({how})",
            site.id,
            site.domain,
            target.domain()
        ));
        let index = match map.targets.iter().position(|known| *known == target) {
            Some(index) => index,
            None => {
                map.targets.push(target);
                map.targets.len() - 1
            }
        };
        map.of_old.insert(site.id, index);
    }
    if !unmatched.is_empty() {
        let domains: Vec<&str> = ours.iter().map(|site| site.domain.as_str()).collect();
        let sites: Vec<String> = unmatched
            .iter()
            .map(|site| format!("{} ({})", site.id, site.domain))
            .collect();
        return Err(format!(
            "Django site(s) {} match no site here. Say where each goes with --site-map \
             OLD_ID=DOMAIN, naming a site here ({}) or a new domain to create.",
            sites.join(", "),
            domains.join(", ")
        ));
    }
    let main_old = old.iter().find(|site| site.id == 1).unwrap_or(&old[0]).id;
    map.main = map.of_old[&main_old];
    if map.targets.len() > 1 {
        map.lines.push(format!(
            "Members go to every one of these sites; visitor links to {}.",
            map.targets[map.main].domain()
        ));
    }
    Ok(map)
}

/// Where one old site goes, and why: `--site-map`, the same domain, or the
/// only site on each side; `None` when nothing says.
fn target_for(
    site: &OldSite,
    old_sites: usize,
    ours: &[Site],
    given: &[(i64, String)],
) -> Option<(Target, &'static str)> {
    if let Some((_, domain)) = given.iter().find(|(id, _)| *id == site.id) {
        return Some(match ours.iter().find(|ours| &ours.domain == domain) {
            Some(ours) => (existing(ours), "--site-map"),
            None => (
                Target::New {
                    domain: domain.clone(),
                    name: new_name(site, domain),
                },
                "--site-map, a new site",
            ),
        });
    }
    let domain = host_without_port(site.domain.trim()).to_ascii_lowercase();
    match ours.iter().find(|ours| ours.domain == domain) {
        Some(ours) => Some((existing(ours), "same domain")),
        None if old_sites == 1 && ours.len() == 1 => {
            Some((existing(&ours[0]), "the only site on each side"))
        }
        None => None,
    }
}

fn existing(site: &Site) -> Target {
    Target::Existing {
        id: site.id,
        domain: site.domain.clone(),
    }
}

fn new_name(site: &OldSite, domain: &str) -> String {
    let name = site.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        domain.to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(id: i64, domain: &str) -> Site {
        Site {
            id,
            domain: domain.into(),
            name: domain.into(),
            created_at: chrono::Utc::now(),
        }
    }

    fn old(id: i64, domain: &str) -> OldSite {
        OldSite {
            id,
            domain: domain.into(),
            name: format!("Old {id}"),
        }
    }

    #[test]
    fn one_site_on_each_side_match_without_asking() {
        let here = [ours(7, "club.example.org")];
        let map = match_sites(&[old(1, "example.com")], &here, &here[0], &[]).expect("matched");
        assert_eq!(map.target_of(1), Some(0));
        assert_eq!(
            map.targets[0],
            Target::Existing {
                id: 7,
                domain: "club.example.org".into()
            }
        );
    }

    #[test]
    fn several_sites_match_by_domain_or_the_map_and_unmatched_ones_stop_it() {
        let here = [ours(1, "a.example.org"), ours(2, "b.example.org")];
        let two = [old(1, "a.example.org:8000"), old(2, "c.example.org")];
        let err = match_sites(&two, &here, &here[0], &[]).expect_err("c is unmatched");
        assert!(err.contains("2 (c.example.org)"), "{err}");
        assert!(err.contains("--site-map"), "{err}");

        let map =
            match_sites(&two, &here, &here[0], &[(2, "b.example.org".into())]).expect("matched");
        assert_eq!(map.targets.len(), 2);
        assert_eq!(map.main, map.target_of(1).expect("1"));

        let map =
            match_sites(&two, &here, &here[0], &[(2, "new.example.org".into())]).expect("matched");
        assert_eq!(
            map.targets[map.target_of(2).expect("2")],
            Target::New {
                domain: "new.example.org".into(),
                name: "Old 2".into()
            }
        );
        assert!(match_sites(&two, &here, &here[0], &[(9, "x.org".into())]).is_err());
    }

    #[test]
    fn site_map_entries_are_checked() {
        assert_eq!(
            parse_site_map_entry("2=Club.Example.org"),
            Ok((2, "club.example.org".into()))
        );
        assert!(parse_site_map_entry("club.example.org").is_err());
        assert!(parse_site_map_entry("x=club.example.org").is_err());
        assert!(parse_site_map_entry("2=http://club.example.org/").is_err());
    }
}
