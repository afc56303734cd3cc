//! `gatehouse purge`: removes what is no longer needed — visitors expired
//! longer than `visitors.retention_days` (with their visit logs), expired
//! sessions, login attempts older than a day (every limit looks back an
//! hour at most) and reset links expired over a day ago — and says how much. With `dry_run` it only counts.

use chrono::{Duration, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use crate::entities::{visitor_logs, visitors};
use crate::settings::Settings;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub visitors: u64,
    pub visitor_logs: u64,
    pub sessions: u64,
    pub login_attempts: u64,
    pub password_resets: u64,
    pub references_erased: u64,
}

pub async fn purge(
    db: &DatabaseConnection,
    settings: &Settings,
    dry_run: bool,
) -> Result<PurgeReport, DbErr> {
    let now = Utc::now();
    let cutoff = now - Duration::days(settings.visitors.retention_days.into());
    let txn = db.begin().await?;
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
    report.references_erased =
        crate::references::erase_old(&txn, settings.references.retention_days, now, dry_run)
            .await?;
    txn.commit().await?;
    Ok(report)
}
