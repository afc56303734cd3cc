//! Every change that can alter what a cached session means — a session row
//! updated or deleted, its member or visitor updated or deleted — is
//! published by the database itself, so no writer (a request, the CLI in
//! another process, an import) can forget to:
//! - PostgreSQL: `pg_notify('gatehouse_sessions', '<s|u|v>:<id>')`, delivered
//!   to every listening instance when the writing transaction commits;
//! - SQLite (one server process): a row in `session_changes`, read in order
//!   by the server (writes are serialised, so the sequence is commit order).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, key prefix, id column).
const WATCHED: &[(&str, &str, &str)] = &[
    ("sessions", "s", "id"),
    ("users", "u", "id"),
    ("visitors", "v", "id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION gatehouse_session_change() RETURNS trigger AS $$
                     BEGIN
                       PERFORM pg_notify('gatehouse_sessions', TG_ARGV[0] || ':' || OLD.id::text);
                       RETURN NULL;
                     END $$ LANGUAGE plpgsql",
                )
                .await?;
                for (table, key, _) in WATCHED {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_session_change AFTER UPDATE OR DELETE ON {table} \
                         FOR EACH ROW EXECUTE FUNCTION gatehouse_session_change('{key}')"
                    ))
                    .await?;
                }
            }
            _ => {
                db.execute_unprepared(
                    "CREATE TABLE session_changes (
                       seq INTEGER PRIMARY KEY AUTOINCREMENT,
                       key TEXT NOT NULL
                     )",
                )
                .await?;
                for (table, key, id) in WATCHED {
                    for event in ["UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_session_change_{event} AFTER {event} ON {table} \
                             BEGIN INSERT INTO session_changes (key) VALUES ('{key}:' || OLD.{id}); END"
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                for (table, _, _) in WATCHED {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_session_change ON {table}"
                    ))
                    .await?;
                }
                db.execute_unprepared("DROP FUNCTION IF EXISTS gatehouse_session_change()")
                    .await?;
            }
            _ => {
                for (table, _, _) in WATCHED {
                    for event in ["UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER IF EXISTS {table}_session_change_{event}"
                        ))
                        .await?;
                    }
                }
                db.execute_unprepared("DROP TABLE IF EXISTS session_changes")
                    .await?;
            }
        }
        Ok(())
    }
}
