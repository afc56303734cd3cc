//! The purge: removes what is no longer needed — visitors expired longer
//! than `visitors.retention_days` (with their visit logs), expired sessions,
//! login attempts older than a day (every limit looks back an hour at most),
//! reset and e-mail-change links a day past their life, delivered or
//! cancelled mail rows older than `mail.retention_days`, audit rows older
//! than `audit.retention_days`, and the referee's details of old reference
//! requests — and says how much. With `dry_run` it only counts.
//!
//! `gatehouse purge` runs it once; `serve` runs it every
//! `purge.interval_minutes` (see `spawn_schedule`): each instance checks
//! every `purge.poll_seconds` and runs it only after claiming the
//! `scheduled_jobs` row with one conditional UPDATE, so instances sharing
//! a database run it once per interval between them.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::entities::{scheduled_jobs, visitor_logs, visitors};
use crate::settings::Settings;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub visitors: u64,
    pub visitor_logs: u64,
    pub sessions: u64,
    pub login_attempts: u64,
    pub password_resets: u64,
    pub email_changes: u64,
    pub mail_rows: u64,
    pub audit_rows: u64,
    pub references_erased: u64,
}

impl PurgeReport {
    /// Rows removed (or, for reference requests, erased), per table.
    pub fn per_table(&self) -> [(&'static str, u64); 9] {
        [
            ("visitors", self.visitors),
            ("visitor_logs", self.visitor_logs),
            ("sessions", self.sessions),
            ("login_attempts", self.login_attempts),
            ("password_resets", self.password_resets),
            ("email_changes", self.email_changes),
            ("mail_outbox", self.mail_rows),
            ("audit_log", self.audit_rows),
            ("reference_requests (erased)", self.references_erased),
        ]
    }
}

/// `visitors 1, visitor_logs 2, …`.
impl fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .per_table()
            .iter()
            .map(|(table, count)| format!("{table} {count}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

pub async fn purge(
    db: &DatabaseConnection,
    settings: &Settings,
    dry_run: bool,
) -> Result<PurgeReport, DbErr> {
    let now = Utc::now();
    let cutoff = now - Duration::days(settings.visitors.retention_days.into());
    let txn = crate::db::write_transaction(db).await?;
    let old_visitors: Vec<String> = visitors::Entity::find()
        .select_only()
        .column(visitors::Column::Id)
        .filter(visitors::Column::ExpiresAt.lt(cutoff))
        .into_tuple()
        .all(&txn)
        .await?;
    let mut report = PurgeReport {
        visitors: old_visitors.len() as u64,
        ..Default::default()
    };
    // In chunks: databases limit the number of bound parameters.
    for chunk in old_visitors.chunks(500) {
        let logs = visitor_logs::Entity::find()
            .filter(visitor_logs::Column::VisitorId.is_in(chunk.iter().cloned()));
        report.visitor_logs += logs.clone().count(&txn).await?;
        if !dry_run {
            visitor_logs::Entity::delete_many()
                .filter(visitor_logs::Column::VisitorId.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?;
            visitors::Entity::delete_many()
                .filter(visitors::Column::Id.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?;
        }
    }
    report.sessions = crate::web::sessions::end_expired(&txn, now, dry_run).await?;
    report.login_attempts =
        crate::attempts::delete_older_than(&txn, now - Duration::days(1), dry_run).await?;
    report.password_resets = crate::accounts::reset::delete_expired(&txn, now, dry_run).await?;
    report.email_changes = crate::accounts::email_change::delete_spent(&txn, now, dry_run).await?;
    let mail_cutoff = now - Duration::days(settings.mail.retention_days.into());
    report.mail_rows = crate::mail::outbox::delete_done_before(&txn, mail_cutoff, dry_run).await?;
    let audit_cutoff = now - Duration::days(settings.audit.retention_days.into());
    report.audit_rows = crate::audit::delete_older_than(&txn, audit_cutoff, dry_run).await?;
    report.references_erased =
        crate::references::erase_old(&txn, settings.references.retention_days, now, dry_run)
            .await?;
    txn.commit().await?;
    Ok(report)
}

/// The `scheduled_jobs` row of the purge.
const JOB: &str = "purge";

/// Starts the scheduled purge (`None` when `purge.interval_minutes` is 0).
/// The task runs until aborted.
pub fn spawn_schedule(
    db: DatabaseConnection,
    settings: Arc<Settings>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = Duration::minutes(settings.purge.interval_minutes.into());
    if interval.is_zero() {
        log::info!("The scheduled purge is off (purge.interval_minutes = 0).");
        return None;
    }
    let poll = std::time::Duration::from_secs(settings.purge.poll_seconds.into());
    let instance = format!(
        "pid {} #{:06x}",
        std::process::id(),
        crate::secrets::os_rng().random_range(0..0x100_0000)
    );
    Some(tokio::spawn(async move {
        if let Err(err) = ensure_job(&db, Utc::now()).await {
            log::error!("The scheduled purge could not be set up: {err}");
        }
        loop {
            tokio::time::sleep(poll).await;
            match claim(&db, &instance, interval, Utc::now()).await {
                Ok(true) => match purge(&db, &settings, false).await {
                    Ok(report) => log::info!("The scheduled purge removed: {report}."),
                    Err(err) => log::error!("The scheduled purge failed: {err}"),
                },
                Ok(false) => {}
                Err(err) => log::warn!("Could not check whether a purge is due: {err}"),
            }
        }
    }))
}

/// Makes the job's row if there is none: the first run is one interval
/// after the first start.
async fn ensure_job(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<(), DbErr> {
    scheduled_jobs::Entity::insert(scheduled_jobs::ActiveModel {
        name: Set(JOB.to_owned()),
        last_run_at: Set(now),
        last_run_by: Set(String::new()),
        runs: Set(0),
    })
    .on_conflict(
        OnConflict::column(scheduled_jobs::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Claims this interval's run: true for exactly one instance per interval.
pub async fn claim(
    db: &DatabaseConnection,
    instance: &str,
    interval: Duration,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = scheduled_jobs::Entity::update_many()
        .col_expr(scheduled_jobs::Column::LastRunAt, Expr::value(now))
        .col_expr(scheduled_jobs::Column::LastRunBy, Expr::value(instance))
        .col_expr(
            scheduled_jobs::Column::Runs,
            Expr::col(scheduled_jobs::Column::Runs).add(1),
        )
        .filter(scheduled_jobs::Column::Name.eq(JOB))
        .filter(scheduled_jobs::Column::LastRunAt.lte(now - interval))
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}
