//! `visitors_visitor` → visitors and `visitors_visitorlog` → visit logs. The
//! old UUID is the link token: it is stored hashed like every Gatehouse
//! token, so links already mailed keep working, and each visitor gets a new
//! public id. A NULL expiry means `created_at + 300 s`, as the old model
//! read it. Log rows keep only a hash of the session key, and neither the
//! query string (it carried the token) nor a token in the referer.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::ActiveValue::Set;

use super::Observer;
use super::report::TableReport;
use super::source::{Source, SourceRow, parse_bool, parse_datetime, parse_int};
use crate::email_address::EmailAddress;
use crate::entities::{visitor_logs, visitors};
use crate::secrets::sha256_hex;
use crate::visitors::Scope;
use crate::visitors::tokens::{LinkToken, url_without_token};

pub const TABLE: &str = "visitors_visitor";
pub const LOG_TABLE: &str = "visitors_visitorlog";
const COLUMNS: &[&str] = &[
    "uuid",
    "first_name",
    "last_name",
    "email",
    "scope",
    "created_at",
    "context",
    "expires_at",
    "is_active",
    "session_expiry",
];
const LOG_COLUMNS: &[&str] = &[
    "visitor_id",
    "session_key",
    "http_method",
    "request_uri",
    "remote_addr",
    "http_user_agent",
    "http_referer",
    "status_code",
    "timestamp",
];

/// django-visitors' `VISITOR_TOKEN_EXPIRY` default: what a NULL expiry meant.
const OLD_TOKEN_EXPIRY_SECS: i64 = 300;

pub const ALREADY_HERE: &str = "already here (a visitor with the same link)";
pub const PLACEHOLDER: &str =
    "an unclaimed self-service request (the old app made one for every denied visit)";
pub const LOG_ALREADY_HERE: &str = "already here (imported with its visitor)";
pub const LOG_NO_VISITOR: &str = "its visitor was not imported";

/// What became of an old visitor, for its log rows.
#[derive(Debug, Clone)]
pub enum Fate {
    Imported(String),
    AlreadyHere,
}

/// Reads the visitors and plans their rows for site `site_id` (a
/// placeholder id when the site is yet to be made: the caller sets it).
/// `taken` holds the token hashes already here.
pub async fn plan(
    source: &Source,
    taken: &HashSet<String>,
    report: &mut TableReport,
    observer: &dyn Observer,
) -> Result<(Vec<visitors::ActiveModel>, HashMap<i64, Fate>), String> {
    observer.start(TABLE, source.count(TABLE).await?);
    let mut planned = Vec::new();
    let mut fates = HashMap::new();
    let mut adding = HashSet::new();
    source
        .read_all(TABLE, COLUMNS, |rows| {
            observer.advance(rows.len() as u64);
            for row in rows {
                report.read += 1;
                let id = parse_int(row.text(0)).unwrap_or_default();
                let (hash, new_id, visitor) = match parse(&row) {
                    Ok(parsed) => parsed,
                    Err(reason) => {
                        report.skip(id, reason);
                        continue;
                    }
                };
                if taken.contains(&hash) {
                    fates.insert(id, Fate::AlreadyHere);
                    report.skip(id, ALREADY_HERE);
                } else if !adding.insert(hash) {
                    report.skip(id, "another row has the same link (uuid)");
                } else {
                    fates.insert(id, Fate::Imported(new_id));
                    report.imported += 1;
                    planned.push(visitor);
                }
            }
        })
        .await?;
    observer.finish();
    Ok((planned, fates))
}

/// A visitor row, checked: (token hash, new id, the row to insert).
fn parse(row: &SourceRow) -> Result<(String, String, visitors::ActiveModel), String> {
    let token = LinkToken::parse(row.text(1)).map_err(|_| "the link token (uuid) is malformed")?;
    let scope = Scope::parse(row.text(5)).map_err(|_| match row.text(5).trim() {
        "" => "it has no scope",
        _ => "the scope has spaces or control characters, or is over 100 characters",
    })?;
    let email = EmailAddress::parse(row.text(4)).map_err(|_| "the e-mail address is not valid")?;
    let created_at = parse_datetime(row.text(6)).ok_or("created_at is not a date")?;
    let context = match row.get(7).map(str::trim) {
        None | Some("" | "null") => None,
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|_| "the context is not valid JSON")?,
        ),
    };
    let expires_at = match row.get(8) {
        None => created_at + Duration::seconds(OLD_TOKEN_EXPIRY_SECS),
        Some(text) => parse_datetime(text).ok_or("expires_at is not a date")?,
    };
    let is_active = parse_bool(row.text(9)).ok_or("is_active is not true or false")?;
    let session_expiry_secs = parse_int(row.text(10))
        .filter(|secs| *secs >= 0)
        .ok_or("session_expiry is not a whole number of seconds")?;
    let self_service = context
        .as_ref()
        .and_then(|context| context.get("self-service"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if self_service && !is_active && email.as_str() == "anon@example.com" {
        return Err(PLACEHOLDER.into());
    }
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let model = visitors::ActiveModel {
        id: Set(id.clone()),
        site_id: Set(0),
        token_hash: Set(token.hash()),
        scope: Set(scope.as_str().to_owned()),
        first_name: Set(row.text(2).trim().to_owned()),
        last_name: Set(row.text(3).trim().to_owned()),
        email: Set(email.into_string()),
        context: Set(context),
        created_at: Set(created_at),
        expires_at: Set(expires_at),
        is_active: Set(is_active),
        session_expiry_secs: Set(session_expiry_secs),
        created_by: Set(None),
        ended_reason: Set(None),
        ended_at: Set(None),
    };
    Ok((token.hash(), id, model))
}

/// Reads the visit logs of the visitors this import adds.
pub async fn plan_logs(
    source: &Source,
    fates: &HashMap<i64, Fate>,
    token_keys: &[&str],
    report: &mut TableReport,
    observer: &dyn Observer,
) -> Result<Vec<visitor_logs::ActiveModel>, String> {
    observer.start(LOG_TABLE, source.count(LOG_TABLE).await?);
    let mut planned = Vec::new();
    source
        .read_all(LOG_TABLE, LOG_COLUMNS, |rows| {
            observer.advance(rows.len() as u64);
            for row in rows {
                report.read += 1;
                let id = parse_int(row.text(0)).unwrap_or_default();
                let fate = parse_int(row.text(1)).and_then(|old| fates.get(&old));
                let result = match fate {
                    Some(Fate::Imported(visitor_id)) => parse_log(&row, visitor_id, token_keys),
                    Some(Fate::AlreadyHere) => Err(LOG_ALREADY_HERE.into()),
                    None => Err(LOG_NO_VISITOR.into()),
                };
                match result {
                    Ok(log) => {
                        report.imported += 1;
                        planned.push(log);
                    }
                    Err(reason) => report.skip(id, reason),
                }
            }
        })
        .await?;
    observer.finish();
    Ok(planned)
}

fn parse_log(
    row: &SourceRow,
    visitor_id: &str,
    token_keys: &[&str],
) -> Result<visitor_logs::ActiveModel, String> {
    let timestamp: DateTime<Utc> = parse_datetime(row.text(9)).ok_or("timestamp is not a date")?;
    let status_code = parse_int(row.text(8))
        .and_then(|code| i32::try_from(code).ok())
        .ok_or("status_code is not a number")?;
    let session_key = row.text(2).trim();
    // The raw X-Forwarded-For list the old app kept: its first entry.
    let remote_addr = row.text(5).split(',').next().unwrap_or_default().trim();
    let path = row.text(4);
    Ok(visitor_logs::ActiveModel {
        visitor_id: Set(visitor_id.to_owned()),
        session_hash: Set(if session_key.is_empty() {
            String::new()
        } else {
            sha256_hex(session_key.as_bytes())
        }),
        http_method: Set(row.text(3).trim().chars().take(10).collect()),
        request_path: Set(url_without_token(path, token_keys)
            .chars()
            .take(2000)
            .collect()),
        status_code: Set(status_code),
        remote_addr: Set(remote_addr.chars().take(64).collect()),
        user_agent: Set(row.text(6).chars().take(1000).collect()),
        referer: Set(url_without_token(row.text(7), token_keys)
            .chars()
            .take(2000)
            .collect()),
        timestamp: Set(timestamp),
        ..Default::default()
    })
}
