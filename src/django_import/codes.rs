//! `invites_invitationcode` → invitations. The old key is `"<site_id>-<code>"`
//! in plain text; only the HMAC of the normalised code is kept, so a code
//! already sent keeps working, under Gatehouse's rules, and a dump of the
//! new database reveals none. The sticky `expired` flag becomes a revoked
//! invitation; the member a used code made is found by its e-mail.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::Observer;
use super::report::TableReport;
use super::sites::SiteMap;
use super::source::{Source, SourceRow, parse_bool, parse_datetime, parse_int};
use crate::email_address::EmailAddress;
use crate::invites::InviteCode;
use crate::secrets::Keys;

pub const TABLE: &str = "invites_invitationcode";
const COLUMNS: &[&str] = &[
    "site_id",
    "created_date",
    "created_by_id",
    "registered_to",
    "registered_name",
    "registered_phone",
    "registered_date",
    "key",
    "expired",
];

pub const ALREADY_HERE: &str = "already here (the same code on the same site)";
pub const BAD_FORMAT: &str = "the code is not in Gatehouse's format (letters then 3 digits)";
pub const REVOKED: &str = "had expired on the old site: imported as revoked";

/// An invitation to insert on the site `targets[target]`.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub target: usize,
    pub code_hmac: String,
    pub email: String,
    pub name: String,
    pub phone: String,
    pub created_at: DateTime<Utc>,
    pub first_used_at: Option<DateTime<Utc>>,
    pub expired: bool,
    /// The e-mail of the old user who made it, if known.
    pub created_by_email: Option<String>,
}

/// Reads the codes and decides what to insert. `taken` holds the code
/// HMACs each target site has already; `email_of` the old users' e-mails.
pub async fn plan(
    source: &Source,
    keys: &Keys,
    sites: &SiteMap,
    taken: &[HashSet<String>],
    email_of: &HashMap<i64, String>,
    report: &mut TableReport,
    observer: &dyn Observer,
) -> Result<Vec<Invitation>, String> {
    observer.start(TABLE, source.count(TABLE).await?);
    let mut planned = Vec::new();
    let mut adding = vec![HashSet::new(); taken.len()];
    source
        .read_all(TABLE, COLUMNS, |rows| {
            observer.advance(rows.len() as u64);
            for row in rows {
                report.read += 1;
                let id = parse_int(row.text(0)).unwrap_or_default();
                let invitation = match parse(&row, keys, sites, email_of) {
                    Ok(invitation) => invitation,
                    Err(reason) => {
                        report.skip(id, reason);
                        continue;
                    }
                };
                if taken[invitation.target].contains(&invitation.code_hmac) {
                    report.skip(id, ALREADY_HERE);
                    continue;
                }
                if !adding[invitation.target].insert(invitation.code_hmac.clone()) {
                    report.skip(id, "the same code is in another row for the same site");
                    continue;
                }
                if invitation.expired {
                    report.note(id, REVOKED);
                }
                report.imported += 1;
                planned.push(invitation);
            }
        })
        .await?;
    observer.finish();
    Ok(planned)
}

fn parse(
    row: &SourceRow,
    keys: &Keys,
    sites: &SiteMap,
    email_of: &HashMap<i64, String>,
) -> Result<Invitation, String> {
    let target = parse_int(row.text(1))
        .and_then(|site| sites.target_of(site))
        .ok_or("its site is not in django_site")?;
    let key = row.get(8).ok_or("it has no code")?;
    // `short_key`: what follows the last `-` of "<site_id>-<code>".
    let short = key.rsplit_once('-').map_or(key, |(_, code)| code);
    let code = InviteCode::parse(short).map_err(|_| BAD_FORMAT)?;
    let email = EmailAddress::parse(row.text(4))
        .map_err(|_| "the invited e-mail address (registered_to) is not valid")?;
    let created_at = parse_datetime(row.text(2)).ok_or("created_date is not a date")?;
    let first_used_at = match row.get(7) {
        None => None,
        Some(text) => Some(parse_datetime(text).ok_or("registered_date is not a date")?),
    };
    let expired = parse_bool(row.text(9)).ok_or("expired is not true or false")?;
    let created_by_email = row
        .get(3)
        .and_then(parse_int)
        .and_then(|user| email_of.get(&user).cloned());
    Ok(Invitation {
        target,
        code_hmac: keys.code_hmac(code.as_str()),
        email: email.into_string(),
        name: row.text(5).trim().chars().take(150).collect(),
        phone: row.text(6).trim().chars().take(40).collect(),
        created_at,
        first_used_at,
        expired,
        created_by_email,
    })
}
