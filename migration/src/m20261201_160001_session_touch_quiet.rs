//! Recording that a session was used (`sessions.last_seen_at`, written at
//! most every five minutes by `touch`) no longer counts as a change to it:
//! it altered nothing a cached session holds, yet evicted the session on
//! every instance, so each session's first request was read twice and left
//! a change behind in every instance's memory.
//!
//! The sessions trigger of `m20261201_000010` now fires on an UPDATE OF
//! every other column (and on DELETE, as before). A column added later
//! must be added here too: the session-cache tests compare this list with
//! the table's columns.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every column of `sessions` but `last_seen_at`.
pub const SESSION_COLUMNS_WATCHED: &[&str] = &[
    "id",
    "user_id",
    "visitor_id",
    "invite_id",
    "invite_revoked",
    "data",
    "expires_at",
    "started_at",
    "user_agent",
    "client_ip",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_update_trigger(
            manager,
            "sessions",
            "s",
            &format!("UPDATE OF {}", SESSION_COLUMNS_WATCHED.join(", ")),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_update_trigger(manager, "sessions", "s", "UPDATE").await
    }
}

/// Replaces the change trigger of `table` (key prefix `key`, as in
/// `m20261201_000010`) by one that fires on `update` (`UPDATE`, or `UPDATE OF`
/// some columns) and on DELETE. Also used by `m20261201_170001`.
pub(crate) async fn replace_update_trigger(
    manager: &SchemaManager<'_>,
    table: &str,
    key: &str,
    update: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {table}_session_change ON {table}"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_session_change AFTER {update} OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION gatehouse_session_change('{key}')"
            ))
            .await?;
        }
        // A new name: re-creating the old one right after its DROP was
        // refused as "already exists" here (sea-orm-migration 2.0, SQLite).
        _ => {
            let (everything, watched) = (
                format!("{table}_session_change_UPDATE"),
                format!("{table}_session_change_watched"),
            );
            for name in [&everything, &watched] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name}"))
                    .await?;
            }
            let name = if update == "UPDATE" {
                everything
            } else {
                watched
            };
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {name} AFTER {update} ON {table} \
                 BEGIN INSERT INTO session_changes (key) VALUES ('{key}:' || OLD.id); END"
            ))
            .await?;
        }
    }
    Ok(())
}
