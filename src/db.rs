//! Connecting to the database and bringing its schema up to date.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, QueryResult, Statement, TransactionTrait,
};

use crate::settings::{Backend, Settings};

/// The highest row id written to one table through a pool's connections,
/// as SQLite reports each row while it is written (by a trigger too),
/// whether or not its transaction commits in the end. A reader of that
/// table that has read up to it knows nothing the pool wrote is waiting.
#[derive(Clone, Default)]
pub struct LatestRow(Arc<AtomicI64>);

impl LatestRow {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A table whose written rows `connect_watching` reports.
pub struct Watched {
    pub table: &'static str,
    pub latest: LatestRow,
}

/// Opens the pool (creating a SQLite file if needed) and tunes SQLite for
/// concurrent readers and writers.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    connect_watching(settings, None).await
}

/// `connect`; on SQLite, every connection of the pool also reports the
/// rows it inserts into `watched.table` (PostgreSQL reports nothing).
pub async fn connect_watching(
    settings: &Settings,
    watched: Option<Watched>,
) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = settings.sqlite_path()
        && let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|err| DbErr::Custom(format!("cannot create {}: {err}", dir.display())))?;
    }
    let mut options = ConnectOptions::new(settings.database.url.clone());
    options
        .max_connections(settings.database.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    // A pooled connection is tested (a round trip) before it is handed out
    // only when it has been idle long enough for a server, proxy or firewall
    // to have dropped it; a SQLite file cannot drop a connection, so never.
    // Testing on every checkout was a third of a password login's statements.
    if settings.database_backend() == Some(Backend::Sqlite) {
        options.test_before_acquire(false);
        // WAL lets readers proceed while one writer commits; writers queue on
        // the busy timeout instead of failing at once.
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Deleted rows (an erased account) are overwritten in the
                // file, not left in free pages.
                .pragma("secure_delete", "ON")
        });
        if let Some(watched) = watched {
            options.map_sqlx_sqlite_pool_opts(move |pool| report_inserts(pool, &watched));
        }
    } else {
        options.test_before_acquire_if_idle_for(Duration::from_secs(30));
    }
    Database::connect(options).await
}

/// Has each new connection of `pool` raise `watched.latest` to the row id of
/// every row inserted into `watched.table` (SQLite's update hook, which runs
/// on the connection's own thread, inside the statement).
fn report_inserts(
    pool: sea_orm::sqlx::pool::PoolOptions<sea_orm::sqlx::Sqlite>,
    watched: &Watched,
) -> sea_orm::sqlx::pool::PoolOptions<sea_orm::sqlx::Sqlite> {
    use sea_orm::sqlx::sqlite::SqliteOperation;
    let (table, latest) = (watched.table, watched.latest.clone());
    pool.after_connect(move |conn, _| {
        let latest = latest.clone();
        Box::pin(async move {
            conn.lock_handle().await?.set_update_hook(move |row| {
                if matches!(row.operation, SqliteOperation::Insert) && row.table == table {
                    latest.0.fetch_max(row.rowid, Ordering::SeqCst);
                }
            });
            Ok(())
        })
    })
}

/// A transaction for work that writes. On SQLite it takes the write lock at
/// once (`BEGIN IMMEDIATE`), waiting its turn on the busy timeout: a
/// deferred transaction that reads before it writes fails at once with
/// "database is locked" when another connection wrote in between (seen
/// with two `gatehouse user create` at once, and an import beside the
/// server). PostgreSQL begins as usual.
pub async fn write_transaction(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Runs `statements` in order, each on its own (not as one transaction),
/// stopping at the first that fails. On SQLite they go as one command of
/// several statements: one round trip to a connection's worker thread, and
/// one release ping, instead of one of each per statement. While password
/// hashes keep both CPUs busy, each round trip wakes a thread on the other
/// CPU, and those wake-ups are most of what a login costs besides its hash.
/// PostgreSQL prepares one statement at a time, so there they go one after
/// another.
pub async fn execute_together(
    db: &DatabaseConnection,
    statements: impl IntoIterator<Item = Statement>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Sqlite {
        for statement in statements {
            db.execute_raw(statement).await?;
        }
        return Ok(());
    }
    match joined(backend, statements) {
        Some(joined) => db.execute_raw(joined).await.map(|_| ()),
        None => Ok(()),
    }
}

/// Runs `statements` as `execute_together` does, on SQLite only (where
/// they share one connection, so `last_insert_rowid()` in one tells the
/// row the one before inserted), and gives back the rows of those that
/// return any, in order: all in one round trip.
pub async fn query_together(
    db: &DatabaseConnection,
    statements: impl IntoIterator<Item = Statement>,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Sqlite {
        return Err(DbErr::Custom(
            "query_together runs on SQLite only: elsewhere each statement may take another connection"
                .into(),
        ));
    }
    match joined(backend, statements) {
        Some(joined) => db.query_all_raw(joined).await,
        None => Ok(Vec::new()),
    }
}

/// SQLite statements as one, each taking the next of the values in turn
/// (SQLite's placeholders are unnumbered); `None` for none.
fn joined(
    backend: DbBackend,
    statements: impl IntoIterator<Item = Statement>,
) -> Option<Statement> {
    let mut sql = String::new();
    let mut values = Vec::new();
    for statement in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&statement.sql);
        values.extend(statement.values.map(|values| values.0).unwrap_or_default());
    }
    (!sql.is_empty()).then(|| Statement::from_sql_and_values(backend, sql, values))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// A database URL with any password hidden, for messages.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A trivial round trip, for `/healthz`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1").await.map(|_| ())
}

/// SQL for the day a timestamp column falls on, as whole days since
/// 1970-01-01 in a zone `offset_secs` east of UTC: what charts group by.
/// Both backends give an integer; `day_number` is the same rule in Rust.
pub fn day_sql(backend: DbBackend, column: &str, offset_secs: i32) -> String {
    match backend {
        DbBackend::Postgres => {
            format!("CAST(FLOOR((EXTRACT(EPOCH FROM {column}) + {offset_secs}) / 86400) AS BIGINT)")
        }
        // SQLite stores RFC 3339 text, which strftime reads (offset included).
        _ => format!("((CAST(strftime('%s', {column}) AS INTEGER) + {offset_secs}) / 86400)"),
    }
}

/// The day number (`day_sql`) of `at`.
pub fn day_number(at: chrono::DateTime<chrono::Utc>, offset_secs: i32) -> i64 {
    (at.timestamp() + i64::from(offset_secs)).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `settle_writes` counts on: a row a trigger inserts is reported
    /// as well as one inserted outright, on every connection of the pool,
    /// and rows of other tables are not.
    #[tokio::test]
    async fn inserts_into_a_watched_table_are_reported_by_every_connection_even_from_triggers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::defaults();
        settings.database.url = format!("sqlite://{}/watched.db?mode=rwc", dir.path().display());
        let latest = LatestRow::default();
        let watched = Watched {
            table: "changes",
            latest: latest.clone(),
        };
        let db = connect_watching(&settings, Some(watched))
            .await
            .expect("connect");
        for sql in [
            "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL)",
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "CREATE TRIGGER people_changed AFTER UPDATE ON people \
             BEGIN INSERT INTO changes (key) VALUES ('p:' || OLD.id); END",
            "INSERT INTO people (id, name) VALUES (1, 'Fred'), (2, 'Ginger')",
        ] {
            db.execute_unprepared(sql).await.expect(sql);
        }
        assert_eq!(latest.get(), 0, "rows of other tables are not reported");
        db.execute_unprepared("UPDATE people SET name = 'Fredrick' WHERE id = 1")
            .await
            .expect("update");
        assert_eq!(latest.get(), 1, "the trigger's row");
        // Several at once, as requests make them: on several connections.
        let updates = (0..8).map(|_| db.execute_unprepared("UPDATE people SET name = name"));
        for result in futures_util::future::join_all(updates).await {
            result.expect("update");
        }
        assert_eq!(latest.get(), 17, "two rows for each of eight updates");
        assert!(db.get_sqlite_connection_pool().size() > 1, "one connection");
        db.execute_unprepared("INSERT INTO changes (key) VALUES ('by hand')")
            .await
            .expect("insert");
        assert_eq!(latest.get(), 18);
    }
    /// `execute_together` and `query_together` send several statements as one
    /// on SQLite: each must still get its own values, in order.
    #[tokio::test]
    async fn statements_sent_together_each_take_their_own_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::defaults();
        settings.database.url = format!("sqlite://{}/together.db?mode=rwc", dir.path().display());
        let db = connect(&settings).await.expect("connect");
        let backend = db.get_database_backend();
        db.execute_unprepared(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, size INTEGER NOT NULL)",
        )
        .await
        .expect("create");
        let insert = |body: &str, size: i64| {
            Statement::from_sql_and_values(
                backend,
                "INSERT INTO notes (body, size) VALUES (?, ?)",
                [body.into(), size.into()],
            )
        };
        execute_together(&db, [insert("first", 1), insert("second", 2)])
            .await
            .expect("together");
        execute_together(&db, []).await.expect("nothing");
        let read = Statement::from_sql_and_values(
            backend,
            "SELECT body, size, last_insert_rowid() AS own FROM notes WHERE size >= ? ORDER BY id",
            [2i64.into()],
        );
        let rows = query_together(&db, [insert("third", 3), read])
            .await
            .expect("query together");
        let read: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|row| {
                let get = |column| row.try_get::<i64>("", column).expect(column);
                (
                    row.try_get("", "body").expect("body"),
                    get("size"),
                    get("own"),
                )
            })
            .collect();
        assert_eq!(
            read,
            [("second".to_owned(), 2, 3), ("third".to_owned(), 3, 3)],
            "values in order, and the query sees the write's row id"
        );
        // A failing statement stops the ones after it.
        let broken = Statement::from_string(backend, "INSERT INTO nowhere VALUES (1)");
        assert!(
            execute_together(&db, [broken, insert("fourth", 4)])
                .await
                .is_err()
        );
        let count = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM notes",
            ))
            .await
            .expect("count")
            .expect("a row");
        assert_eq!(count.try_get::<i64>("", "n").expect("n"), 3);
    }
}
