//! Connecting to the database and bringing its schema up to date.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Values;
use sea_orm::sqlx::{self, SqliteConnection};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, QueryResult, RuntimeErr, Statement, TransactionTrait,
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
            opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
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
    pool: sqlx::pool::PoolOptions<sqlx::Sqlite>,
    watched: &Watched,
) -> sqlx::pool::PoolOptions<sqlx::Sqlite> {
    use sqlx::sqlite::SqliteOperation;
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
/// several statements, on a connection of `lane`: one round trip to its
/// worker thread instead of one per statement, and no release ping. While
/// password hashes keep both CPUs busy, each round trip wakes a thread on
/// the other CPU, and those wake-ups are most of what a login costs
/// besides its hash. PostgreSQL prepares one statement at a time, so there
/// they go one after another, on the pool.
pub async fn execute_together(
    db: &DatabaseConnection,
    lane: &Lane,
    statements: impl IntoIterator<Item = Statement>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Sqlite {
        for statement in statements {
            db.execute_raw(statement).await?;
        }
        return Ok(());
    }
    let Some(joined) = joined(backend, statements) else {
        return Ok(());
    };
    let mut conn = lane.take(db).await?;
    sqlx_query(&joined)
        .execute(conn.as_mut())
        .await
        .map(|_| ())
        .map_err(|err| DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err))))
}

/// Runs `statements` as `execute_together` does, on SQLite only (where
/// they share one connection, so `last_insert_rowid()` in one tells the
/// row the one before inserted), and gives back the rows of those that
/// return any, in order: all in one round trip.
pub async fn query_together(
    db: &DatabaseConnection,
    lane: &Lane,
    statements: impl IntoIterator<Item = Statement>,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Sqlite {
        return Err(DbErr::Custom(
            "query_together runs on SQLite only: elsewhere each statement may take another connection"
                .into(),
        ));
    }
    let Some(joined) = joined(backend, statements) else {
        return Ok(Vec::new());
    };
    let mut conn = lane.take(db).await?;
    let rows = sqlx_query(&joined)
        .fetch_all(conn.as_mut())
        .await
        .map_err(|err| DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))))?;
    Ok(rows.into_iter().map(QueryResult::from).collect())
}

fn sqlx_query(
    statement: &Statement,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sea_query_sqlx::SqlxValues> {
    let values = statement.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(
        sqlx::AssertSqlSafe(statement.sql.as_str()),
        sea_query_sqlx::SqlxValues(values),
    )
}

/// A few SQLite connections kept apart from the pool, for the statements a
/// login sends together (`execute_together`, `query_together`). Taking one
/// and putting it back costs no round trip, where the pool tests every
/// connection it gets back with one (sqlx's release ping): a third of a
/// login's round trips. A command left running by a request that went away
/// cannot disturb the next one: a SQLite connection's worker runs its
/// commands one after another, and these never open a transaction.
pub struct Lane {
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    /// One per connection the lane may have: more would only wait on
    /// SQLite's write lock (these statements all write), and sleep there.
    permits: tokio::sync::Semaphore,
}

/// How many connections the lane has at most.
const LANE_CONNECTIONS: usize = 4;

impl Default for Lane {
    fn default() -> Self {
        Self {
            idle: std::sync::Mutex::default(),
            permits: tokio::sync::Semaphore::new(LANE_CONNECTIONS),
        }
    }
}

impl Lane {
    async fn take(&self, db: &DatabaseConnection) -> Result<LaneConnection<'_>, DbErr> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbErr::Custom("the lane is closed".into()))?;
        let idle = self.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn_err = |err| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)));
                let pool = db.get_sqlite_connection_pool();
                // Opened as the pool opens its own (pragmas, update hook),
                // then no longer the pool's.
                let mut conn = pool.acquire().await.map_err(conn_err)?.detach();
                // These statements touch a handful of pages: a small page
                // cache keeps the extra connections cheap.
                sqlx::Executor::execute(&mut conn, "PRAGMA cache_size = -256")
                    .await
                    .map_err(conn_err)?;
                conn
            }
        };
        Ok(LaneConnection {
            lane: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A lane connection in use; it goes back to the lane when dropped (and
/// only then is its permit given back).
struct LaneConnection<'a> {
    lane: &'a Lane,
    conn: Option<SqliteConnection>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl LaneConnection<'_> {
    fn as_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for LaneConnection<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.lane.idle().push(conn);
        }
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
        // The lane's connections are opened as the pool's are, hook included,
        // and kept for the next use.
        let lane = Lane::default();
        for expected in [19, 20] {
            let insert = Statement::from_string(
                DbBackend::Sqlite,
                "INSERT INTO changes (key) VALUES ('on the lane')",
            );
            execute_together(&db, &lane, [insert])
                .await
                .expect("insert");
            assert_eq!(latest.get(), expected);
            assert_eq!(lane.idle().len(), 1, "one, reused");
        }
    }
    /// `execute_together` and `query_together` send several statements as one
    /// on SQLite: each must still get its own values, in order.
    #[tokio::test]
    async fn statements_sent_together_each_take_their_own_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::defaults();
        settings.database.url = format!("sqlite://{}/together.db?mode=rwc", dir.path().display());
        let db = connect(&settings).await.expect("connect");
        let lane = Lane::default();
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
        execute_together(&db, &lane, [insert("first", 1), insert("second", 2)])
            .await
            .expect("together");
        execute_together(&db, &lane, []).await.expect("nothing");
        let read = Statement::from_sql_and_values(
            backend,
            "SELECT body, size, last_insert_rowid() AS own FROM notes WHERE size >= ? ORDER BY id",
            [2i64.into()],
        );
        let rows = query_together(&db, &lane, [insert("third", 3), read])
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
            execute_together(&db, &lane, [broken, insert("fourth", 4)])
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
