//! `gatehouse import django`: moving in from a mezzanine-invites /
//! django-visitors site. The Django database is only read. Every table is
//! read and checked first (bad rows are reported and skipped, never a panic);
//! then, unless it is a dry run, everything is written in one transaction, so
//! an import either happens whole or not at all. Rows already here (same
//! member, same code on the same site, same visitor link) are skipped, so a
//! second run changes nothing.
//!
//! - `source`: the Django database, read-only.
//! - `sites`: which site each `django_site` becomes.
//! - `members`, `codes`, `visitors`: each old table, row by row.
//! - `report`: what was read, imported and skipped, and why.

mod codes;
mod members;
pub mod report;
pub mod sites;
mod source;
mod visitors;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::AppState;
use crate::accounts::users::{self, ImportedUser};
use crate::entities::{invites, users as users_entity, visitor_logs, visitors as visitor_entity};
pub use report::{Report, TableReport};
pub use sites::parse_site_map_entry;
use sites::{OldSite, SiteMap, Target};
use source::{Source, parse_int};

/// Table names and the reasons the report uses, for callers and tests.
pub mod tables {
    pub use super::codes::{
        ALREADY_HERE as CODE_ALREADY_HERE, BAD_FORMAT as CODE_BAD_FORMAT, REVOKED as CODE_REVOKED,
        TABLE as CODES,
    };
    pub use super::members::{ALREADY_HERE as MEMBER_ALREADY_HERE, MUST_RESET, TABLE as MEMBERS};
    pub use super::visitors::{
        ALREADY_HERE as VISITOR_ALREADY_HERE, LOG_ALREADY_HERE, LOG_TABLE as LOGS, PLACEHOLDER,
        TABLE as VISITORS,
    };
    pub const SITES: &str = "django_site";
    pub use super::MAPPED;
}

/// The note on an old site matched to a site already here.
pub const MAPPED: &str = "matched to a site already here (nothing to create)";

/// What to import from where.
#[derive(Debug, Clone)]
pub struct Options {
    /// `sqlite://PATH` or `postgres://…`, as `database.url`.
    pub database: String,
    pub dry_run: bool,
    /// `--site-map OLD_ID=DOMAIN`, checked.
    pub site_map: Vec<(i64, String)>,
}

/// Told how far the import has got (a progress bar on a terminal).
pub trait Observer {
    fn start(&self, table: &'static str, rows: u64);
    fn advance(&self, rows: u64);
    fn finish(&self);
}

/// An observer that shows nothing.
pub struct Silently;

impl Observer for Silently {
    fn start(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The Django database could not be read, or its sites not matched:
    /// nothing was written.
    #[error("{0}")]
    Source(String),
    #[error("the import was rolled back, nothing was written: {0}")]
    Db(#[from] DbErr),
}

/// Everything read and checked, ready to write.
struct Plan {
    sites: SiteMap,
    members: Vec<members::Member>,
    invitations: Vec<codes::Invitation>,
    visitors: Vec<visitor_entity::ActiveModel>,
    logs: Vec<visitor_logs::ActiveModel>,
}

/// Imports (or with `dry_run`, only reads and reports).
pub async fn import(
    state: &AppState,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Report, ImportError> {
    let started = Instant::now();
    let source = Source::open(&options.database)
        .await
        .map_err(ImportError::Source)?;
    let mut tables = Vec::new();
    let plan = read(state, &source, options, &mut tables, observer)
        .await
        .map_err(ImportError::Source)?;
    let site_lines = plan.sites.lines.clone();
    if !options.dry_run {
        write(state, plan, observer).await?;
        state.sites.refresh().await?;
    }
    Ok(Report {
        source: crate::db::redacted_url(&options.database),
        dry_run: options.dry_run,
        sites: site_lines,
        tables,
        took: started.elapsed(),
    })
}

/// Reads every table and plans the rows, appending each table's report.
async fn read(
    state: &AppState,
    source: &Source,
    options: &Options,
    tables: &mut Vec<TableReport>,
    observer: &dyn Observer,
) -> Result<Plan, String> {
    let map = match_sites(state, source, options, tables).await?;
    let site_ids: Vec<Option<i64>> = map
        .targets
        .iter()
        .map(|target| match target {
            Target::Existing { id, .. } => Some(*id),
            Target::New { .. } => None,
        })
        .collect();
    let db_err = |err: DbErr| format!("could not read this site's database: {err}");

    let mut report = TableReport::new(members::TABLE);
    let planned_members = if source.has_table(members::TABLE).await? {
        let taken = taken_members(&state.db, &site_ids).await.map_err(db_err)?;
        members::plan(source, taken, &mut report, observer).await?
    } else {
        report.missing = true;
        members::Planned {
            members: Vec::new(),
            email_of: HashMap::new(),
        }
    };
    tables.push(report);

    let mut report = TableReport::new(codes::TABLE);
    let invitations = if source.has_table(codes::TABLE).await? {
        let taken = taken_codes(&state.db, &site_ids).await.map_err(db_err)?;
        let email_of = &planned_members.email_of;
        codes::plan(
            source,
            &state.keys,
            &map,
            &taken,
            email_of,
            &mut report,
            observer,
        )
        .await?
    } else {
        report.missing = true;
        Vec::new()
    };
    tables.push(report);

    let (visitors, logs) = read_visitors(state, source, tables, observer).await?;
    Ok(Plan {
        sites: map,
        members: planned_members.members,
        invitations,
        visitors,
        logs,
    })
}

async fn match_sites(
    state: &AppState,
    source: &Source,
    options: &Options,
    tables: &mut Vec<TableReport>,
) -> Result<SiteMap, String> {
    let mut report = TableReport::new(tables::SITES);
    let mut old = Vec::new();
    if source.has_table(tables::SITES).await? {
        source
            .read_all(tables::SITES, &["domain", "name"], |rows| {
                for row in rows {
                    report.read += 1;
                    old.push(OldSite {
                        id: parse_int(row.text(0)).unwrap_or_default(),
                        domain: row.text(1).to_owned(),
                        name: row.text(2).to_owned(),
                    });
                }
            })
            .await?;
    } else {
        report.missing = true;
    }
    let ours: Vec<_> = state
        .sites
        .all()
        .await
        .iter()
        .map(|site| (**site).clone())
        .collect();
    let default_site = state.sites.for_host(state.sites.default_domain()).await;
    let map = sites::match_sites(&old, &ours, &default_site, &options.site_map)?;
    report.imported = map
        .targets
        .iter()
        .filter(|target| matches!(target, Target::New { .. }))
        .count() as u64;
    for site in &old {
        if let Some(Target::Existing { .. }) = map.target_of(site.id).map(|i| &map.targets[i]) {
            report.note(site.id, MAPPED);
        }
    }
    tables.push(report);
    Ok(map)
}

async fn read_visitors(
    state: &AppState,
    source: &Source,
    tables: &mut Vec<TableReport>,
    observer: &dyn Observer,
) -> Result<
    (
        Vec<visitor_entity::ActiveModel>,
        Vec<visitor_logs::ActiveModel>,
    ),
    String,
> {
    let mut report = TableReport::new(visitors::TABLE);
    let (planned, fates) = if source.has_table(visitors::TABLE).await? {
        let taken = taken_tokens(&state.db)
            .await
            .map_err(|err| format!("could not read this site's visitors: {err}"))?;
        visitors::plan(source, &taken, &mut report, observer).await?
    } else {
        report.missing = true;
        (Vec::new(), HashMap::new())
    };
    tables.push(report);
    let mut report = TableReport::new(visitors::LOG_TABLE);
    let logs = if source.has_table(visitors::LOG_TABLE).await? {
        let keys = crate::visitors::tokens::token_keys(&state.settings.visitors.querystring_key);
        visitors::plan_logs(source, &fates, &keys, &mut report, observer).await?
    } else {
        report.missing = true;
        Vec::new()
    };
    tables.push(report);
    Ok((planned, logs))
}

/// Who each existing target site has (a site yet to be made has nobody).
async fn taken_members(
    db: &impl ConnectionTrait,
    site_ids: &[Option<i64>],
) -> Result<Vec<members::Taken>, DbErr> {
    let mut taken = Vec::with_capacity(site_ids.len());
    for site_id in site_ids {
        let mut here = members::Taken::default();
        if let Some(site_id) = site_id {
            let rows: Vec<(String, String)> = users_entity::Entity::find()
                .select_only()
                .column(users_entity::Column::Username)
                .column(users_entity::Column::Email)
                .filter(users_entity::Column::SiteId.eq(*site_id))
                .into_tuple()
                .all(db)
                .await?;
            for (username, email) in rows {
                here.emails.insert(email.clone());
                here.usernames.insert(username.to_ascii_lowercase(), email);
            }
        }
        taken.push(here);
    }
    Ok(taken)
}

async fn taken_codes(
    db: &impl ConnectionTrait,
    site_ids: &[Option<i64>],
) -> Result<Vec<HashSet<String>>, DbErr> {
    let mut taken = Vec::with_capacity(site_ids.len());
    for site_id in site_ids {
        let hmacs: Vec<String> = match site_id {
            Some(site_id) => {
                invites::Entity::find()
                    .select_only()
                    .column(invites::Column::CodeHmac)
                    .filter(invites::Column::SiteId.eq(*site_id))
                    .into_tuple()
                    .all(db)
                    .await?
            }
            None => Vec::new(),
        };
        taken.push(hmacs.into_iter().collect());
    }
    Ok(taken)
}

async fn taken_tokens(db: &impl ConnectionTrait) -> Result<HashSet<String>, DbErr> {
    let hashes: Vec<String> = visitor_entity::Entity::find()
        .select_only()
        .column(visitor_entity::Column::TokenHash)
        .into_tuple()
        .all(db)
        .await?;
    Ok(hashes.into_iter().collect())
}

/// Rows per INSERT (SQLite allows 32 766 values in one statement).
const BATCH: usize = 1000;

/// Writes the plan in one transaction.
async fn write(state: &AppState, plan: Plan, observer: &dyn Observer) -> Result<(), DbErr> {
    let txn = crate::db::write_transaction(&state.db).await?;
    let mut site_ids = Vec::with_capacity(plan.sites.targets.len());
    for target in &plan.sites.targets {
        site_ids.push(match target {
            Target::Existing { id, .. } => *id,
            Target::New { domain, name } => {
                crate::web::sites::add(&txn, domain, name)
                    .await
                    .map_err(|err| DbErr::Custom(format!("could not add site {domain}: {err}")))?
                    .id
            }
        });
    }
    observer.start("writing", plan_size(&plan));
    let members = plan.members.into_iter().map(|member| ImportedUser {
        site_id: site_ids[member.target],
        username: member.username,
        email: member.email,
        first_name: member.first_name,
        last_name: member.last_name,
        password_hash: member.password_hash,
        is_staff: member.is_staff,
        is_active: member.is_active,
        created_at: member.created_at,
        last_login_at: member.last_login_at,
    });
    let members: Vec<_> = members.collect();
    observer.advance(members.len() as u64);
    users::insert_imported(&txn, members).await?;
    write_invitations(&txn, &site_ids, plan.invitations, observer).await?;
    let visitor_site = site_ids[plan.sites.main];
    let visitors = plan.visitors.into_iter().map(|mut visitor| {
        visitor.site_id = Set(visitor_site);
        visitor
    });
    insert_batches(&txn, visitors.collect::<Vec<_>>(), observer).await?;
    insert_batches(&txn, plan.logs, observer).await?;
    txn.commit().await?;
    observer.finish();
    Ok(())
}

fn plan_size(plan: &Plan) -> u64 {
    (plan.members.len() + plan.invitations.len() + plan.visitors.len() + plan.logs.len()) as u64
}

async fn insert_batches<A>(
    txn: &impl ConnectionTrait,
    rows: Vec<A>,
    observer: &dyn Observer,
) -> Result<(), DbErr>
where
    A: sea_orm::ActiveModelTrait,
{
    let mut rows = rows.into_iter();
    loop {
        let batch: Vec<A> = rows.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            return Ok(());
        }
        observer.advance(batch.len() as u64);
        A::Entity::insert_many(batch)
            .exec_without_returning(txn)
            .await?;
    }
}

/// Inserts the invitations, linking each used one to the member with its
/// e-mail and each to its creator, found among the members now here.
async fn write_invitations(
    txn: &impl ConnectionTrait,
    site_ids: &[i64],
    invitations: Vec<codes::Invitation>,
    observer: &dyn Observer,
) -> Result<(), DbErr> {
    if invitations.is_empty() {
        return Ok(());
    }
    let rows: Vec<(i64, i64, String)> = users_entity::Entity::find()
        .select_only()
        .column(users_entity::Column::Id)
        .column(users_entity::Column::SiteId)
        .column(users_entity::Column::Email)
        .filter(users_entity::Column::SiteId.is_in(site_ids.iter().copied()))
        .into_tuple()
        .all(txn)
        .await?;
    let member: HashMap<(i64, String), i64> = rows
        .into_iter()
        .map(|(id, site_id, email)| ((site_id, email), id))
        .collect();
    let now = Utc::now();
    let rows = invitations.into_iter().map(|invitation| {
        let site_id = site_ids[invitation.target];
        let user_id = invitation
            .first_used_at
            .and_then(|_| member.get(&(site_id, invitation.email.clone())).copied());
        let created_by = invitation
            .created_by_email
            .and_then(|email| member.get(&(site_id, email)).copied());
        invites::ActiveModel {
            site_id: Set(site_id),
            code_hmac: Set(invitation.code_hmac),
            email: Set(invitation.email),
            name: Set(invitation.name),
            phone: Set(invitation.phone),
            grants_staff: Set(false),
            created_by: Set(created_by),
            created_at: Set(invitation.created_at),
            sent_at: Set(None),
            first_used_at: Set(invitation.first_used_at),
            user_id: Set(user_id),
            revoked_at: Set(invitation.expired.then_some(now)),
            ..Default::default()
        }
    });
    insert_batches(txn, rows.collect::<Vec<_>>(), observer).await
}
