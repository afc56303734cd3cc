//! How the session cache hears changes. The database publishes them itself
//! (triggers on `sessions`, `users` and `visitors`; see the
//! `session_change_triggers` migration), so no writer — a request, the CLI in
//! another process, an import — can forget:
//! - PostgreSQL: every instance LISTENs on `gatehouse_sessions`. A change
//!   arrives as `s:<row>`, `u:<user>` or `v:<visitor>` when its transaction
//!   commits. Instances also greet each other (`hello:<instance>` every few
//!   seconds, `bye:<instance>` at a clean stop), so each knows who else is
//!   serving.
//! - SQLite (one server process): the triggers append to `session_changes`,
//!   read in order (writes are serialised, so the sequence is commit order).
//!
//! After a request that may have written (`settle_writes`), the response
//! waits until the change is heard everywhere: on PostgreSQL the instance
//! sends `barrier:<instance>:<n>` and waits for every live instance to
//! answer `ack:…` — notifications reach each listener in commit order, so an
//! instance that answers has applied every change committed before. An
//! instance that does not answer in time (it crashed, say) is waited for
//! only briefly and, once silent for `PEER_SILENCE`, no longer at all. On
//! SQLite the pool reports the change rows it inserts (`changes_written`),
//! so a request that changed nothing cached waits for nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use sea_orm::sqlx::postgres::{PgListener, PgPool};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, SqlxPostgresConnector,
    Statement,
};
use tokio::sync::oneshot;

use super::session_cache::{SessionCache, Subject};
use crate::db::{self, LatestRow};

/// The PostgreSQL channel the triggers and instances notify.
const CHANNEL: &str = "gatehouse_sessions";
/// How often an instance greets the others.
const HELLO_EVERY: Duration = Duration::from_secs(2);
/// An instance not heard from for this long is taken to be gone.
const PEER_SILENCE: Duration = Duration::from_secs(7);
/// How long a write waits for every instance to hear it.
const SETTLE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often SQLite's change table is read when nothing asks sooner.
const SQLITE_POLL: Duration = Duration::from_millis(100);
/// How long the command line waits for every instance to hear its change.
const HEARD_TIMEOUT: Duration = Duration::from_secs(2);

/// What the feed keeps beside the cache.
pub struct FeedState {
    /// This instance, as the others know it.
    me: u64,
    /// PostgreSQL: the other instances, and when each was last heard.
    peers: Mutex<HashMap<u64, Instant>>,
    /// PostgreSQL: barriers sent, waiting for their answers.
    waiting: Mutex<HashMap<u64, Waiter>>,
    /// SQLite: the last `session_changes` row applied; one reader at a time.
    applied: tokio::sync::Mutex<Option<i64>>,
    /// SQLite: the last `session_changes` row this process's pool inserted.
    written: LatestRow,
}

impl Default for FeedState {
    fn default() -> Self {
        Self {
            me: rand::random(),
            peers: Mutex::default(),
            waiting: Mutex::default(),
            applied: tokio::sync::Mutex::new(None),
            written: LatestRow::default(),
        }
    }
}

struct Waiter {
    missing: HashSet<u64>,
    done: Option<oneshot::Sender<()>>,
}

impl FeedState {
    /// SQLite: whether every change this process inserted has been read
    /// (or its transaction rolled back and a later change was read).
    async fn own_changes_heard(&self) -> bool {
        matches!(*self.applied.lock().await, Some(applied) if applied >= self.written.get())
    }

    fn live_peers(&self) -> HashSet<u64> {
        let mut peers = self.peers.lock().expect("peers");
        peers.retain(|_, seen| seen.elapsed() < PEER_SILENCE);
        peers.keys().copied().collect()
    }

    fn answered(&self, barrier: u64, instance: u64) {
        let mut waiting = self.waiting.lock().expect("waiting");
        if let Some(waiter) = waiting.get_mut(&barrier) {
            waiter.missing.remove(&instance);
            if waiter.missing.is_empty()
                && let Some(done) = waiter.done.take()
            {
                let _ = done.send(());
            }
        }
    }
}

/// Starts hearing the database's changes (in the background, for as long as
/// the runtime runs). Until they are heard, nothing is cached.
pub fn start(cache: &SessionCache, db: DatabaseConnection) {
    if cache.feed().is_none() {
        return;
    }
    let cache = cache.clone();
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool().clone();
            tokio::spawn(listen(cache.clone(), pool.clone()));
            tokio::spawn(greet(cache, pool));
        }
        _ => {
            tokio::spawn(poll(cache, db));
        }
    }
}

/// Returns once every change committed before the call has been heard by
/// this instance and (PostgreSQL) every other live one, or the wait timed
/// out: then false.
pub async fn settle(cache: &SessionCache, db: &DatabaseConnection) -> bool {
    let Some(feed) = cache.feed().filter(|_| cache.is_live()) else {
        return true;
    };
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let heard = barrier(feed, db).await;
            if !heard {
                log::warn!("Not every instance confirmed hearing a session change in time.");
            }
            heard
        }
        _ => match catch_up(cache, feed, db).await {
            Ok(()) => true,
            Err(err) => {
                log::warn!(
                    "Could not read session changes ({err}); the session cache was emptied."
                );
                cache.clear();
                false
            }
        },
    }
}

/// What the pool must report for `settle_writes` to tell, on SQLite, a
/// request that changed nothing the cache holds (most form posts, every
/// login) from one that did; `None` when the cache is off.
pub fn changes_written(cache: &SessionCache) -> Option<db::Watched> {
    cache.feed().map(|feed| db::Watched {
        table: "session_changes",
        latest: feed.written.clone(),
    })
}

/// Middleware: after a request that may have written (any method but GET,
/// HEAD, OPTIONS) and after its session was saved, waits until the changes
/// are heard (`settle`). On SQLite it returns at once when every change the
/// pool inserted has been read already: the request changed nothing cached,
/// and changes by other processes are the poll's to hear.
pub async fn settle_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = super::may_write(&req).then(|| super::app_state(&req));
    let response = next.call(req).await?;
    if let Some(state) = state {
        let heard = match (state.db.get_database_backend(), state.sessions.feed()) {
            (DbBackend::Sqlite, Some(feed)) => feed.own_changes_heard().await,
            _ => false,
        };
        if !heard {
            settle(&state.sessions, &state.db).await;
        }
    }
    Ok(response)
}

async fn notify(db: &impl ConnectionTrait, payload: String) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), payload.into()],
    ))
    .await
    .map(|_| ())
}

async fn barrier(feed: &FeedState, db: &DatabaseConnection) -> bool {
    let id: u64 = rand::random();
    let mut missing = feed.live_peers();
    missing.insert(feed.me);
    let (done, heard) = oneshot::channel();
    feed.waiting.lock().expect("waiting").insert(
        id,
        Waiter {
            missing,
            done: Some(done),
        },
    );
    let sent = notify(db, format!("barrier:{}:{id}", feed.me)).await;
    let heard = sent.is_ok() && tokio::time::timeout(SETTLE_TIMEOUT, heard).await.is_ok();
    feed.waiting.lock().expect("waiting").remove(&id);
    heard
}

/// A notification on `CHANNEL`: the instances' own messages (ids are
/// instances' and barriers' numbers), or anything else, which is a trigger's
/// change (`Subject`).
enum Notice<'a> {
    Hello(u64),
    Bye(u64),
    Barrier { from: u64, id: u64 },
    Ack { to: u64, id: u64, by: u64 },
    Other(&'a str),
}

impl<'a> Notice<'a> {
    fn parse(payload: &'a str) -> Self {
        Self::of_instance(payload).unwrap_or(Self::Other(payload))
    }

    fn of_instance(payload: &str) -> Option<Self> {
        let number = |part: &str| part.parse::<u64>().ok();
        let mut parts = payload.split(':');
        Some(
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("hello"), Some(from), None, None) => Self::Hello(number(from)?),
                (Some("bye"), Some(from), None, None) => Self::Bye(number(from)?),
                (Some("barrier"), Some(from), Some(id), None) => Self::Barrier {
                    from: number(from)?,
                    id: number(id)?,
                },
                (Some("ack"), Some(to), Some(id), Some(by)) => Self::Ack {
                    to: number(to)?,
                    id: number(id)?,
                    by: number(by)?,
                },
                _ => return None,
            },
        )
    }
}

/// One notification, in the order the database delivered it.
fn heard(cache: &SessionCache, feed: &FeedState, pool: &PgPool, payload: &str) {
    match Notice::parse(payload) {
        Notice::Hello(from) if from == feed.me => {
            // Our own greeting is back: the others hear us.
            if !cache.is_live() {
                cache.set_live(true);
            }
        }
        Notice::Hello(from) => {
            feed.peers
                .lock()
                .expect("peers")
                .insert(from, Instant::now());
        }
        Notice::Bye(from) => {
            feed.peers.lock().expect("peers").remove(&from);
        }
        Notice::Barrier { from, id } if from == feed.me => feed.answered(id, feed.me),
        Notice::Barrier { from, id } => {
            // Everything committed before the barrier has been applied.
            let (pool, me) = (pool.clone(), feed.me);
            tokio::spawn(async move {
                let db = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
                let _ = notify(&db, format!("ack:{from}:{id}:{me}")).await;
            });
        }
        Notice::Ack { to, id, by } => {
            if to == feed.me {
                feed.answered(id, by);
            }
            feed.peers.lock().expect("peers").insert(by, Instant::now());
        }
        Notice::Other(payload) => {
            if let Some(subject) = Subject::parse(payload) {
                cache.changed(subject);
            }
        }
    }
}

async fn listen(cache: SessionCache, pool: PgPool) {
    let feed = cache.feed().expect("a feed");
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    let db = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
                    let _ = notify(&db, format!("hello:{}", feed.me)).await;
                    while let Ok(notification) = listener.recv().await {
                        heard(&cache, feed, &pool, notification.payload());
                    }
                    log::warn!("Lost the session change listener; reconnecting.");
                }
                Err(err) => log::warn!("Could not LISTEN for session changes: {err}"),
            },
            Err(err) => log::warn!("Could not connect to hear session changes: {err}"),
        }
        cache.set_live(false);
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Greets the other instances now and then, so they wait for this one.
async fn greet(cache: SessionCache, pool: PgPool) {
    let feed = cache.feed().expect("a feed");
    let db = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
    while !pool.is_closed() {
        tokio::time::sleep(HELLO_EVERY).await;
        if cache.is_live() {
            let _ = notify(&db, format!("hello:{}", feed.me)).await;
        }
    }
}

/// For a process that writes but does not serve (the command line): waits,
/// once its writes have committed, until every serving instance has heard
/// them, as a request's answer waits in `settle_writes`.
/// - PostgreSQL: it listens from `watch` on and learns the serving
///   instances from their greetings (each greets every `HELLO_EVERY`), then
///   sends a barrier and waits for every one of them to answer.
/// - SQLite: the one server reads the changes every `SQLITE_POLL`; it waits
///   for two of its rounds.
pub struct Instances(Watching);

enum Watching {
    Postgres {
        db: DatabaseConnection,
        since: Instant,
        heard: tokio::sync::mpsc::UnboundedReceiver<String>,
        _listening: StopListening,
    },
    Sqlite,
}

/// Ends the listening task with the `Instances` that started it.
struct StopListening(tokio::task::AbortHandle);

impl Drop for StopListening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serving instances that did not answer in time. Each drops the change
/// within its cache's entry lifetime (`sessions.cache_seconds`) at most.
#[derive(Debug, thiserror::Error)]
#[error("{0} serving instance(s) did not confirm hearing the change in time")]
pub struct NotHeard(pub usize);

impl Instances {
    /// Starts listening, before the writes, so the greetings that tell who
    /// is serving are heard while they are made.
    pub async fn watch(db: &DatabaseConnection) -> Result<Self, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(Self(Watching::Sqlite));
        }
        let unreachable = |err: sea_orm::sqlx::Error| DbErr::Custom(err.to_string());
        let mut listener = PgListener::connect_with(db.get_postgres_connection_pool())
            .await
            .map_err(unreachable)?;
        listener.listen(CHANNEL).await.map_err(unreachable)?;
        let (tell, heard) = tokio::sync::mpsc::unbounded_channel();
        let listening = tokio::spawn(async move {
            while let Ok(notification) = listener.recv().await {
                if tell.send(notification.payload().to_owned()).is_err() {
                    break;
                }
            }
        });
        Ok(Self(Watching::Postgres {
            db: db.clone(),
            since: Instant::now(),
            heard,
            _listening: StopListening(listening.abort_handle()),
        }))
    }

    /// Call once the writes have committed.
    pub async fn wait_until_heard(self) -> Result<(), NotHeard> {
        let Watching::Postgres {
            db,
            since,
            mut heard,
            _listening,
        } = self.0
        else {
            tokio::time::sleep(2 * SQLITE_POLL).await;
            return Ok(());
        };
        let mut serving = HashSet::new();
        let known = tokio::time::Instant::from_std(since + HELLO_EVERY + SETTLE_TIMEOUT);
        while let Ok(Some(payload)) = tokio::time::timeout_at(known, heard.recv()).await {
            match Notice::parse(&payload) {
                Notice::Hello(from) | Notice::Ack { by: from, .. } => serving.insert(from),
                Notice::Bye(from) => serving.remove(&from),
                _ => false,
            };
        }
        if serving.is_empty() {
            return Ok(());
        }
        let (me, id): (u64, u64) = (rand::random(), rand::random());
        if notify(&db, format!("barrier:{me}:{id}")).await.is_err() {
            return Err(NotHeard(serving.len()));
        }
        let deadline = tokio::time::Instant::now() + HEARD_TIMEOUT;
        while !serving.is_empty()
            && let Ok(Some(payload)) = tokio::time::timeout_at(deadline, heard.recv()).await
        {
            match Notice::parse(&payload) {
                Notice::Ack {
                    to,
                    id: answered,
                    by,
                } if to == me && answered == id => serving.remove(&by),
                Notice::Bye(from) => serving.remove(&from),
                _ => false,
            };
        }
        match serving.len() {
            0 => Ok(()),
            silent => Err(NotHeard(silent)),
        }
    }
}

/// Tells the other instances this one stops (they no longer wait for it).
pub async fn say_goodbye(cache: &SessionCache, db: &DatabaseConnection) {
    if let Some(feed) = cache.feed()
        && db.get_database_backend() == DbBackend::Postgres
    {
        let _ = notify(db, format!("bye:{}", feed.me)).await;
    }
}

async fn poll(cache: SessionCache, db: DatabaseConnection) {
    let feed = cache.feed().expect("a feed");
    let mut rounds = 0u64;
    loop {
        match catch_up(&cache, feed, &db).await {
            Ok(()) if !cache.is_live() => cache.set_live(true),
            Ok(()) => {}
            Err(err) => {
                log::warn!("Could not read session changes: {err}");
                cache.set_live(false);
            }
        }
        rounds += 1;
        // Now and then, drop rows long applied (some kept for a second
        // process on the same file).
        if rounds.is_multiple_of(600)
            && let Some(applied) = *feed.applied.lock().await
        {
            let _ = db
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "DELETE FROM session_changes WHERE seq <= ?",
                    [(applied - 10_000).into()],
                ))
                .await;
        }
        if db.get_sqlite_connection_pool().is_closed() {
            return;
        }
        tokio::time::sleep(SQLITE_POLL).await;
    }
}

/// SQLite: applies the `session_changes` rows not yet applied, in order.
async fn catch_up(
    cache: &SessionCache,
    feed: &FeedState,
    db: &DatabaseConnection,
) -> Result<(), DbErr> {
    #[derive(FromQueryResult)]
    struct Change {
        seq: i64,
        key: String,
    }
    let mut applied = feed.applied.lock().await;
    let Some(after) = *applied else {
        // First read: nothing was cached before this process started.
        let last: Option<i64> = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT MAX(seq) AS seq FROM session_changes",
            ))
            .await?
            .and_then(|row| row.try_get("", "seq").ok());
        *applied = Some(last.unwrap_or(0));
        return Ok(());
    };
    let changes = Change::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "SELECT seq, key FROM session_changes WHERE seq > ? ORDER BY seq",
        [after.into()],
    ))
    .all(db)
    .await?;
    for change in changes {
        if let Some(subject) = Subject::parse(&change.key) {
            cache.changed(subject);
        }
        *applied = Some(change.seq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Notice;

    #[test]
    fn instance_messages_are_told_from_changes() {
        assert!(matches!(Notice::parse("hello:7"), Notice::Hello(7)));
        assert!(matches!(Notice::parse("bye:7"), Notice::Bye(7)));
        assert!(matches!(
            Notice::parse("barrier:7:42"),
            Notice::Barrier { from: 7, id: 42 }
        ));
        assert!(matches!(
            Notice::parse("ack:7:42:9"),
            Notice::Ack {
                to: 7,
                id: 42,
                by: 9
            }
        ));
        for other in [
            "u:12",
            "v:abc",
            "hello:x",
            "hello:7:8",
            "barrier:7",
            "ack:7:42",
        ] {
            assert!(
                matches!(Notice::parse(other), Notice::Other(p) if p == other),
                "{other}"
            );
        }
    }
}
