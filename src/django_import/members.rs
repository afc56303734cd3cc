//! `auth_user` → members. Django's users belong to no site, so each becomes
//! a member of every site the import fills. The password hash is kept as it
//! is when Gatehouse can verify it (see `accounts::django_hashes`); otherwise
//! the member has no password and sets one with a reset.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::Observer;
use super::report::TableReport;
use super::source::{Source, SourceRow, parse_bool, parse_datetime, parse_int};
use crate::accounts::django_hashes::{Imported, classify};
use crate::accounts::users::validate_username;
use crate::email_address::{EmailAddress, EmailError};

pub const TABLE: &str = "auth_user";
const COLUMNS: &[&str] = &[
    "password",
    "last_login",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_active",
    "date_joined",
];

pub const ALREADY_HERE: &str = "already here (a member with this username and e-mail)";
pub const MUST_RESET: &str = "no usable password: must set one with a password reset";

/// A member to insert on the site `targets[target]`.
#[derive(Debug, Clone)]
pub struct Member {
    pub target: usize,
    pub username: String,
    pub email: EmailAddress,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: Option<String>,
    pub is_staff: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Who is on a site already: lower-case username → e-mail, and e-mails.
#[derive(Debug, Default, Clone)]
pub struct Taken {
    pub usernames: HashMap<String, String>,
    pub emails: HashSet<String>,
}

/// What the members' table gave.
pub struct Planned {
    pub members: Vec<Member>,
    /// Old user id → e-mail (for invitations' creators).
    pub email_of: HashMap<i64, String>,
}

/// Reads `auth_user` and decides, row by row and site by site, what to
/// insert; `taken[target]` is who each target site has already.
pub async fn plan(
    source: &Source,
    taken: Vec<Taken>,
    report: &mut TableReport,
    observer: &dyn Observer,
) -> Result<Planned, String> {
    observer.start(TABLE, source.count(TABLE).await?);
    let mut planned = Planned {
        members: Vec::new(),
        email_of: HashMap::new(),
    };
    // Members this import adds, per site, for duplicates inside the old data.
    let mut adding = vec![Taken::default(); taken.len()];
    source
        .read_all(TABLE, COLUMNS, |rows| {
            observer.advance(rows.len() as u64);
            for row in rows {
                report.read += 1;
                let id = parse_int(row.text(0)).unwrap_or_default();
                let member = match parse(&row) {
                    Ok(member) => member,
                    Err(reason) => {
                        report.skip(id, reason);
                        continue;
                    }
                };
                planned
                    .email_of
                    .insert(id, member.email.as_str().to_owned());
                match &member.password_hash {
                    Err(reason) => report.note(id, format!("{MUST_RESET} ({reason})")),
                    Ok(None) => report.note(id, "no password (logs in with a code or a reset)"),
                    Ok(Some(_)) => {}
                }
                for target in 0..taken.len() {
                    let key = member.username.to_ascii_lowercase();
                    let email = member.email.as_str();
                    if let Some(reason) = clash(&taken[target], &adding[target], &key, email) {
                        report.skip(id, reason);
                        continue;
                    }
                    adding[target].usernames.insert(key, email.to_owned());
                    adding[target].emails.insert(email.to_owned());
                    report.imported += 1;
                    planned.members.push(Member {
                        target,
                        password_hash: member.password_hash.clone().unwrap_or(None),
                        ..member.clone_for()
                    });
                }
            }
        })
        .await?;
    observer.finish();
    Ok(planned)
}

/// Why a member cannot be added to a site, if they cannot.
fn clash(here: &Taken, adding: &Taken, username: &str, email: &str) -> Option<&'static str> {
    match here.usernames.get(username) {
        Some(theirs) if theirs == email => return Some(ALREADY_HERE),
        Some(_) => return Some("the username belongs to another member here"),
        None => {}
    }
    if here.emails.contains(email) {
        return Some("the e-mail address belongs to another member here");
    }
    if adding.usernames.contains_key(username) {
        return Some("the username differs only in case from another imported user's");
    }
    if adding.emails.contains(email) {
        return Some("another imported user has the same e-mail address");
    }
    None
}

/// A row, checked; the password is `Err(why)` when it cannot be verified.
struct Parsed {
    username: String,
    email: EmailAddress,
    first_name: String,
    last_name: String,
    password_hash: Result<Option<String>, String>,
    is_staff: bool,
    is_active: bool,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl Parsed {
    fn clone_for(&self) -> Member {
        Member {
            target: 0,
            username: self.username.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            password_hash: None,
            is_staff: self.is_staff,
            is_active: self.is_active,
            created_at: self.created_at,
            last_login_at: self.last_login_at,
        }
    }
}

fn parse(row: &SourceRow) -> Result<Parsed, String> {
    let username = validate_username(row.text(3))
        .map_err(|err| format!("the username is not accepted here: {err}"))?;
    let email = EmailAddress::parse(row.text(6)).map_err(|err| match err {
        EmailError::Empty => "no e-mail address (every member here needs one)".to_owned(),
        _ => "the e-mail address is not valid".to_owned(),
    })?;
    let flag = |index: usize, name: &str| {
        parse_bool(row.text(index)).ok_or_else(|| format!("{name} is not true or false"))
    };
    let created_at =
        parse_datetime(row.text(9)).ok_or_else(|| "date_joined is not a date".to_owned())?;
    let last_login_at = match row.get(2) {
        None => None,
        Some(text) => {
            Some(parse_datetime(text).ok_or_else(|| "last_login is not a date".to_owned())?)
        }
    };
    let password_hash = match classify(row.text(1)) {
        Imported::Usable(_) => Ok(Some(row.text(1).to_owned())),
        Imported::NoPassword => Ok(None),
        Imported::Unverifiable(why) => Err(why),
    };
    Ok(Parsed {
        username,
        email,
        first_name: row.text(4).trim().to_owned(),
        last_name: row.text(5).trim().to_owned(),
        password_hash,
        is_staff: flag(7, "is_staff")?,
        is_active: flag(8, "is_active")?,
        created_at,
        last_login_at,
    })
}
