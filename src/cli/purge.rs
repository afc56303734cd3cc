//! `gatehouse purge`: deletes what has outlived its use, or with `dry_run`
//! only counts it.

use std::fmt;

use crate::purge::PurgeReport;
use crate::settings::Settings;

/// What was (or would be) deleted.
pub struct Purged {
    pub report: PurgeReport,
    pub dry_run: bool,
    pub retention_days: u32,
    pub mail_retention_days: u32,
    pub audit_retention_days: u32,
}

/// Migrates the database first, so a purge works on a fresh one too.
pub async fn purge(settings: &Settings, dry_run: bool) -> anyhow::Result<Purged> {
    let db = crate::db::connect(settings).await?;
    crate::db::migrate(&db).await?;
    let report = crate::purge::purge(&db, settings, dry_run).await?;
    Ok(Purged {
        report,
        dry_run,
        retention_days: settings.visitors.retention_days,
        mail_retention_days: settings.mail.retention_days,
        audit_retention_days: settings.audit.retention_days,
    })
}

impl fmt::Display for Purged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.report;
        let (verb, erase) = if self.dry_run {
            ("Would delete", "Would erase")
        } else {
            ("Deleted", "Erased")
        };
        writeln!(
            f,
            "{verb} {} visitor(s) expired over {} days ago, with {} visit log row(s).",
            report.visitors, self.retention_days, report.visitor_logs
        )?;
        writeln!(f, "{verb} {} expired session(s).", report.sessions)?;
        writeln!(
            f,
            "{verb} {} login attempt record(s) older than a day.",
            report.login_attempts
        )?;
        writeln!(
            f,
            "{verb} {} password reset link(s) expired over a day ago.",
            report.password_resets
        )?;
        writeln!(
            f,
            "{verb} {} e-mail change link(s) used or expired over a day ago.",
            report.email_changes
        )?;
        writeln!(
            f,
            "{verb} {} delivered or cancelled mail row(s) older than {} days.",
            report.mail_rows, self.mail_retention_days
        )?;
        writeln!(
            f,
            "{verb} {} audit log row(s) older than {} days.",
            report.audit_rows, self.audit_retention_days
        )?;
        writeln!(
            f,
            "{erase} the referee's details from {} expired or cancelled reference request(s).",
            report.references_erased
        )?;
        write!(f, "Per table: {report}.")
    }
}
