//! The in-process session cache, read before the database (Django's
//! `cached_db` engine is the model). The database stays the truth: a cache
//! hit costs no query, and every change to a session, its member or its
//! visitor evicts it, on every instance, before that instance's next request
//! can use it.
//!
//! How changes arrive: the database publishes them itself (triggers), and
//! `web::session_feed` hears them and calls `changed`.
//!
//! Races: an entry remembers the position of the change clock when its row
//! was read; a change heard after that position voids it, so a read that
//! raced a write is never served afterwards. While changes may go unheard
//! (the listener's connection dropped), the cache is bypassed, and it is
//! emptied when the listener is back. `sessions.cache_seconds` bounds an
//! entry's life whatever happens.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::notification::RemovalCause;
use moka::sync::Cache;

/// A session's state, as actix-session hands it around.
pub type State = HashMap<String, String>;

/// What a change names: a session (by row id), a member, a visitor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Session(String),
    User(i64),
    Visitor(String),
}

impl Subject {
    /// `s:<row id>`, `u:<user id>`, `v:<visitor id>`, as the triggers write.
    pub fn parse(key: &str) -> Option<Self> {
        let (kind, id) = key.split_once(':')?;
        match kind {
            "s" => Some(Self::Session(id.to_owned())),
            "u" => id.parse().ok().map(Self::User),
            "v" => Some(Self::Visitor(id.to_owned())),
            _ => None,
        }
    }
}

/// A cached session: its state (with the rows loaded alongside it), when it
/// ends, what it depends on, and when it was read.
struct Entry {
    state: State,
    expires_at: DateTime<Utc>,
    depends_on: Vec<Subject>,
    read_at: u64,
}

/// Cheap to clone; `SessionCache::disabled()` caches nothing.
#[derive(Clone)]
pub struct SessionCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    entries: Cache<String, Arc<Entry>>,
    /// When each subject last changed, as a position of `clock.now`.
    changes: Cache<Subject, u64>,
    clock: Arc<Clock>,
    /// False while changes may go unheard: nothing is read or kept.
    live: AtomicBool,
    /// What the change feed keeps (see `web::session_feed`).
    feed: super::session_feed::FeedState,
}

#[derive(Default)]
struct Clock {
    now: AtomicU64,
    /// Entries read before this position are void (the cache was emptied).
    cleared_at: AtomicU64,
}

impl Clock {
    fn tick(&self) -> u64 {
        self.now.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn clear(&self) {
        let at = self.tick();
        self.cleared_at.fetch_max(at, Ordering::SeqCst);
    }
}

impl SessionCache {
    pub fn new(seconds: u64, capacity: u64) -> Self {
        if seconds == 0 || capacity == 0 {
            return Self::disabled();
        }
        let life = Duration::from_secs(seconds);
        let clock = Arc::new(Clock::default());
        let on_drop = clock.clone();
        let changes = Cache::builder()
            // Kept longer than any entry that a change could void…
            .time_to_live(life * 2)
            .max_capacity(capacity.saturating_mul(4))
            // …and if one must go early, nothing read before it is trusted.
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    on_drop.clear();
                }
            })
            .build();
        Self {
            inner: Some(Arc::new(Inner {
                entries: Cache::builder()
                    .time_to_live(life)
                    .max_capacity(capacity)
                    .build(),
                changes,
                clock,
                live: AtomicBool::new(false),
                feed: super::session_feed::FeedState::default(),
            })),
        }
    }

    pub fn disabled() -> Self {
        Self { inner: None }
    }

    fn live(&self) -> Option<&Inner> {
        self.inner
            .as_deref()
            .filter(|inner| inner.live.load(Ordering::SeqCst))
    }

    /// The position to give `put` for a row about to be read.
    pub fn mark(&self) -> u64 {
        self.inner
            .as_deref()
            .map_or(0, |inner| inner.clock.now.load(Ordering::SeqCst))
    }

    /// The cached state of a session row, if it is still good.
    pub fn get(&self, row_id: &str) -> Option<State> {
        let inner = self.live()?;
        let entry = inner.entries.get(row_id)?;
        let good = entry.expires_at > Utc::now()
            && entry.read_at >= inner.clock.cleared_at.load(Ordering::SeqCst)
            && entry.depends_on.iter().all(|subject| {
                inner
                    .changes
                    .get(subject)
                    .is_none_or(|changed_at| changed_at <= entry.read_at)
            });
        if good {
            Some(entry.state.clone())
        } else {
            inner.entries.invalidate(row_id);
            None
        }
    }

    /// Keeps a session row read at position `read_at` (from `mark`).
    pub fn put(
        &self,
        row_id: String,
        state: State,
        expires_at: DateTime<Utc>,
        depends_on: Vec<Subject>,
        read_at: u64,
    ) {
        let Some(inner) = self.live() else { return };
        let entry = Entry {
            state,
            expires_at,
            depends_on,
            read_at,
        };
        inner.entries.insert(row_id, Arc::new(entry));
    }

    /// Something changed: every entry depending on it is void from now on.
    pub fn changed(&self, subject: Subject) {
        let Some(inner) = self.inner.as_deref() else {
            return;
        };
        let at = inner.clock.tick();
        if let Subject::Session(row_id) = &subject {
            inner.entries.invalidate(row_id);
        }
        inner.changes.insert(subject, at);
    }

    /// Forgets everything (changes may have gone unheard).
    pub fn clear(&self) {
        if let Some(inner) = self.inner.as_deref() {
            inner.clock.clear();
            inner.entries.invalidate_all();
        }
    }

    /// Whether the cache is in use now (its feed is heard).
    pub fn is_live(&self) -> bool {
        self.live().is_some()
    }

    /// The feed's state; `None` when the cache is off.
    pub fn feed(&self) -> Option<&super::session_feed::FeedState> {
        self.inner.as_deref().map(|inner| &inner.feed)
    }

    /// In use (emptied first: what happened while not listening is unknown),
    /// or not in use while changes may go unheard.
    pub fn set_live(&self, live: bool) {
        if let Some(inner) = self.inner.as_deref() {
            if live {
                self.clear();
            }
            inner.live.store(live, Ordering::SeqCst);
        }
    }

    /// Sessions held now (for the memory benchmark).
    pub fn len(&self) -> u64 {
        self.inner.as_deref().map_or(0, |inner| {
            inner.entries.run_pending_tasks();
            inner.entries.entry_count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_cache() -> SessionCache {
        let cache = SessionCache::new(60, 100);
        cache.set_live(true);
        cache
    }

    fn state(value: &str) -> State {
        State::from([("k".to_owned(), value.to_owned())])
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(1)
    }

    #[test]
    fn keys_name_what_changed() {
        assert_eq!(
            Subject::parse("s:abc"),
            Some(Subject::Session("abc".into()))
        );
        assert_eq!(Subject::parse("u:42"), Some(Subject::User(42)));
        assert_eq!(
            Subject::parse("v:x-1"),
            Some(Subject::Visitor("x-1".into()))
        );
        assert_eq!(Subject::parse("u:x"), None);
        assert_eq!(Subject::parse("barrier:1"), None);
    }

    #[test]
    fn a_change_voids_the_entries_depending_on_it() {
        let cache = live_cache();
        let deps = vec![Subject::Session("row".into()), Subject::User(7)];
        cache.put("row".into(), state("a"), later(), deps, cache.mark());
        assert_eq!(cache.get("row"), Some(state("a")));
        cache.changed(Subject::User(8));
        assert_eq!(cache.get("row"), Some(state("a")));
        cache.changed(Subject::User(7));
        assert_eq!(cache.get("row"), None);
    }

    #[test]
    fn a_read_that_raced_a_change_is_never_served() {
        let cache = live_cache();
        let read_at = cache.mark();
        // The change is heard while the (old) row is being read.
        cache.changed(Subject::Session("row".into()));
        let deps = vec![Subject::Session("row".into())];
        cache.put("row".into(), state("old"), later(), deps.clone(), read_at);
        assert_eq!(cache.get("row"), None);
        // Read again after the change: kept.
        cache.put("row".into(), state("new"), later(), deps, cache.mark());
        assert_eq!(cache.get("row"), Some(state("new")));
    }

    #[test]
    fn nothing_is_kept_or_served_while_changes_may_go_unheard() {
        let cache = live_cache();
        let deps = vec![Subject::Session("row".into())];
        cache.put(
            "row".into(),
            state("a"),
            later(),
            deps.clone(),
            cache.mark(),
        );
        cache.set_live(false);
        assert_eq!(cache.get("row"), None);
        cache.put(
            "other".into(),
            state("b"),
            later(),
            deps.clone(),
            cache.mark(),
        );
        // Back: emptied, since what happened meanwhile is unknown.
        cache.set_live(true);
        assert_eq!(cache.get("row"), None);
        assert_eq!(cache.get("other"), None);
    }

    #[test]
    fn expired_sessions_are_not_served() {
        let cache = live_cache();
        let past = Utc::now() - chrono::Duration::seconds(1);
        cache.put("row".into(), state("a"), past, vec![], cache.mark());
        assert_eq!(cache.get("row"), None);
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = SessionCache::new(0, 100);
        cache.put("row".into(), state("a"), later(), vec![], cache.mark());
        assert_eq!(cache.get("row"), None);
    }
}
