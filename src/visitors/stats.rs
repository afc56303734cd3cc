//! Visitor figures for the staff index: visits per day by scope, and how
//! many live links look shared. Both aggregate in SQL.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Statement};

/// Visits (visit-log rows) of one scope on one day (`db::day_sql`).
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct ScopeDay {
    pub scope: String,
    pub day: i64,
    pub hits: i64,
}

/// Visits per scope and day since `since`, by scope then day.
pub async fn hits_per_day(
    db: &impl ConnectionTrait,
    site_id: i64,
    since: DateTime<Utc>,
    offset_secs: i32,
) -> Result<Vec<ScopeDay>, DbErr> {
    let backend = db.get_database_backend();
    let day = crate::db::day_sql(backend, "l.timestamp", offset_secs);
    // Per visitor and day first (the log's time index), then per scope.
    let sql = format!(
        "SELECT v.scope AS scope, d.day AS day, CAST(SUM(d.hits) AS BIGINT) AS hits \
         FROM (SELECT l.visitor_id AS visitor_id, {day} AS day, COUNT(*) AS hits \
               FROM visitor_logs l WHERE l.timestamp >= $1 \
               GROUP BY l.visitor_id, {day}) d \
         JOIN visitors v ON v.id = d.visitor_id \
         WHERE v.site_id = $2 \
         GROUP BY v.scope, d.day ORDER BY v.scope, d.day"
    );
    let statement = Statement::from_sql_and_values(backend, sql, [since.into(), site_id.into()]);
    ScopeDay::find_by_statement(statement).all(db).await
}

/// How many of a site's live links (`count_active`) were used from more
/// than one session or more than one address: perhaps shared. (Two
/// different values exist exactly when the smallest and the largest differ:
/// cheaper than counting distinct values; empty values do not count.)
pub async fn count_shared(
    db: &impl ConnectionTrait,
    site_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT COUNT(*) AS n FROM (SELECT l.visitor_id FROM visitor_logs l \
               JOIN visitors v ON v.id = l.visitor_id \
               WHERE v.site_id = $1 AND v.is_active = $2 AND v.expires_at >= $3 \
               GROUP BY l.visitor_id \
               HAVING MIN(NULLIF(l.session_hash, '')) <> MAX(NULLIF(l.session_hash, '')) \
                   OR MIN(NULLIF(l.remote_addr, '')) <> MAX(NULLIF(l.remote_addr, ''))) s";
    let statement =
        Statement::from_sql_and_values(backend, sql, [site_id.into(), true.into(), now.into()]);
    let row = db.query_one_raw(statement).await?;
    let count: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}
