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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

/// A session's state, as actix-session hands it around.
pub type State = HashMap<String, String>;

/// A session row's id: the SHA-256 of its key, hex in the database and
/// bytes here (half the memory, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowId([u8; 32]);

impl RowId {
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

/// What a change names: a session row, a member, a visitor. (`Subject<&str>`
/// looks one up without allocating; it hashes as its owned form.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject<Id = Arc<str>> {
    Session(RowId),
    User(i64),
    Visitor(Id),
}

impl quick_cache::Equivalent<Subject> for Subject<&str> {
    fn equivalent(&self, key: &Subject) -> bool {
        match (self, key) {
            (Self::Session(a), Subject::Session(b)) => a == b,
            (Self::User(a), Subject::User(b)) => a == b,
            (Self::Visitor(a), Subject::Visitor(b)) => *a == &**b,
            _ => false,
        }
    }
}

impl Subject {
    /// `s:<row id>`, `u:<user id>`, `v:<visitor id>`, as the triggers write.
    pub fn parse(key: &str) -> Option<Self> {
        let (kind, id) = key.split_once(':')?;
        match kind {
            "s" => RowId::from_hex(id).map(Self::Session),
            "u" => id.parse().ok().map(Self::User),
            "v" => Some(Self::Visitor(id.into())),
            _ => None,
        }
    }
}

/// Whose a session is: a change to either voids it.
#[derive(Debug, Default, Clone)]
pub struct Owners {
    pub user: Option<i64>,
    pub visitor: Option<String>,
}

/// A cached session: its state (with the rows loaded alongside it), until
/// when it may be used, whose it is, and when it was read. Kept compact:
/// 100 000 of them must fit in the memory budget, so the state and the
/// visitor's id share one allocation (`Packed`).
struct Entry {
    packed: Packed,
    expires_at: DateTime<Utc>,
    kept_until: Instant,
    user: Option<i64>,
    read_at: u64,
}

/// The visitor's id (its length first, as a byte), then each name and value
/// of the state: the name (its index in `Names`, one byte, or `LITERAL`, its
/// length as a byte and its text), the value's length (LEB128) and the value.
struct Packed(Box<[u8]>);

/// A name byte saying the name's text follows (not in `Names`).
const LITERAL: u8 = u8::MAX;

impl Packed {
    /// `None` when a name or the visitor's id is too long to pack (never for
    /// the names and ids the site makes): such a session is not cached.
    fn new(state: &State, visitor: Option<&str>, names: &Names) -> Option<Self> {
        let visitor = visitor.unwrap_or_default();
        let mut packed = Vec::with_capacity(
            1 + visitor.len() + state.values().map(|value| 4 + value.len()).sum::<usize>(),
        );
        packed.push(u8::try_from(visitor.len()).ok()?);
        packed.extend_from_slice(visitor.as_bytes());
        for (name, value) in state {
            match names.index_of(name) {
                Some(index) => packed.push(index),
                None => {
                    packed.extend([LITERAL, u8::try_from(name.len()).ok()?]);
                    packed.extend_from_slice(name.as_bytes());
                }
            }
            push_length(&mut packed, u32::try_from(value.len()).ok()?);
            packed.extend_from_slice(value.as_bytes());
        }
        Some(Self(packed.into_boxed_slice()))
    }

    fn visitor(&self) -> Option<&str> {
        let len = usize::from(self.0[0]);
        (len > 0).then(|| text(&self.0[1..=len]))
    }

    fn state(&self, names: &Names) -> State {
        let mut state = State::new();
        let mut rest = &self.0[1 + usize::from(self.0[0])..];
        while let [tag, tail @ ..] = rest {
            let (name, tail) = match *tag {
                LITERAL => {
                    let (len, tail) = tail.split_first().expect("packed with its length");
                    tail.split_at(usize::from(*len))
                }
                index => (names.name(index).as_bytes(), tail),
            };
            let (len, tail) = take_length(tail);
            let (value, tail) = tail.split_at(len);
            state.insert(text(name).to_owned(), text(value).to_owned());
            rest = tail;
        }
        state
    }
}

/// `len` in LEB128: seven bits a byte, low first, the top bit set on all
/// but the last (a value under 128 bytes long takes one byte, not four).
fn push_length(packed: &mut Vec<u8>, mut len: u32) {
    while len >= 0x80 {
        packed.push((len & 0x7f) as u8 | 0x80);
        len >>= 7;
    }
    packed.push(len as u8);
}

/// The length `push_length` wrote at the start of `bytes`, and what follows.
fn take_length(bytes: &[u8]) -> (usize, &[u8]) {
    let mut len = 0;
    for (at, byte) in bytes.iter().enumerate() {
        len |= usize::from(byte & 0x7f) << (7 * at);
        if byte & 0x80 == 0 {
            return (len, &bytes[at + 1..]);
        }
    }
    unreachable!("packed by push_length")
}

/// The names sessions use, each packed as its index (one byte) instead of
/// its text: the dozen names the site writes recur in every session (a
/// fifth of a visitor's entry). Filled as names are first packed; a slot is
/// set once and never changes, so reading one takes no lock.
struct Names {
    slots: [OnceLock<Box<str>>; NAME_SLOTS],
    /// Slots handed out (may pass `NAME_SLOTS`: then names are packed whole).
    taken: AtomicUsize,
}

/// Far more than the names the site uses; below `LITERAL`.
const NAME_SLOTS: usize = 64;

impl Names {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
            taken: AtomicUsize::new(0),
        }
    }

    /// `name`'s index, given one if it has none yet; `None` when all are
    /// taken. Two threads giving a new name an index at once may give it two:
    /// both read back as the name.
    fn index_of(&self, name: &str) -> Option<u8> {
        let taken = self.taken.load(Ordering::Acquire).min(NAME_SLOTS);
        let known = self.slots[..taken]
            .iter()
            .position(|slot| slot.get().is_some_and(|known| **known == *name));
        let index = match known {
            Some(index) => index,
            None => {
                let index = self.taken.fetch_add(1, Ordering::AcqRel);
                self.slots.get(index)?.set(name.into()).ok()?;
                index
            }
        };
        u8::try_from(index).ok()
    }

    /// The name at an index `index_of` gave.
    fn name(&self, index: u8) -> &str {
        self.slots[usize::from(index)]
            .get()
            .expect("an index index_of gave")
    }
}

/// Packed from `&str`s at whole-string boundaries, so always UTF-8.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("packed from strings")
}

/// A session row as read from the database: its state, when it expires,
/// whose it is.
pub type Read = (State, DateTime<Utc>, Owners);

/// Attempts to find a good entry before reading around the cache (a change
/// keeps voiding what is read).
const READ_ATTEMPTS: usize = 3;

/// When a subject changed: a position of the clock, and the moment.
#[derive(Clone, Copy)]
struct Change {
    at: u64,
    heard: Instant,
}

/// Cheap to clone; `SessionCache::disabled()` caches nothing.
#[derive(Clone)]
pub struct SessionCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    entries: Cache<RowId, Arc<Entry>>,
    names: Names,
    /// When each subject last changed.
    changes: Cache<Subject, Change, UnitWeighter, DefaultHashBuilder, ChangePushedOut>,
    /// How long an entry is used before the database is read again.
    life: Duration,
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

/// A change must be remembered as long as an entry read before it may be
/// used (`life`, plus a slow read): twice `life`.
fn change_memory(life: Duration) -> Duration {
    life * 2
}

/// Changes are pruned of old ones every this many changes.
const PRUNE_EVERY: u64 = 4096;

/// If the change map is full and must push out a change still young enough
/// to void entries, nothing read before now is trusted.
#[derive(Clone)]
struct ChangePushedOut {
    clock: Arc<Clock>,
    memory: Duration,
}

impl Lifecycle<Subject, Change> for ChangePushedOut {
    type RequestState = ();

    // Not `on_evict`: that also hears a change replaced by a newer one for
    // the same subject, which must not empty the cache.
    fn before_evict(&self, _: &mut (), _: &Subject, change: &mut Change) {
        if change.heard.elapsed() < self.memory {
            self.clock.clear();
        }
    }
}

impl Inner {
    fn entry(
        &self,
        state: &State,
        expires_at: DateTime<Utc>,
        owners: &Owners,
        read_at: u64,
    ) -> Option<Entry> {
        Some(Entry {
            packed: Packed::new(state, owners.visitor.as_deref(), &self.names)?,
            expires_at,
            kept_until: Instant::now() + self.life,
            user: owners.user,
            read_at,
        })
    }

    /// Drops `entry` (found void), unless it was replaced meanwhile.
    fn drop_void(&self, row: RowId, entry: &Arc<Entry>) {
        self.entries
            .remove_if(&row, |kept| Arc::ptr_eq(kept, entry));
    }

    /// Whether `subject` changed after position `read_at`.
    fn changed_since(&self, subject: &Subject<&str>, read_at: u64) -> bool {
        self.changes
            .get(subject)
            .is_some_and(|change| change.at > read_at)
    }

    fn good(&self, row: RowId, entry: &Entry) -> bool {
        entry.kept_until > Instant::now()
            && entry.expires_at > Utc::now()
            && entry.read_at >= self.clock.cleared_at.load(Ordering::SeqCst)
            && !self.changed_since(&Subject::Session(row), entry.read_at)
            && !entry
                .user
                .is_some_and(|user| self.changed_since(&Subject::User(user), entry.read_at))
            && !entry.packed.visitor().is_some_and(|visitor| {
                self.changed_since(&Subject::Visitor(visitor), entry.read_at)
            })
    }
}

impl SessionCache {
    pub fn new(seconds: u64, capacity: u64) -> Self {
        if seconds == 0 || capacity == 0 {
            return Self::disabled();
        }
        let life = Duration::from_secs(seconds);
        let clock = Arc::new(Clock::default());
        let changes = Cache::with(
            1024,
            capacity.saturating_mul(4),
            UnitWeighter,
            DefaultHashBuilder::default(),
            ChangePushedOut {
                clock: clock.clone(),
                memory: change_memory(life),
            },
        );
        let capacity_items = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            inner: Some(Arc::new(Inner {
                entries: Cache::new(capacity_items),
                names: Names::new(),
                changes,
                life,
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

    /// The cached state of a session row (its hex id), if it is still good
    /// (requests go through `get_or_read`).
    #[cfg(test)]
    pub fn get(&self, row_id: &str) -> Option<State> {
        let inner = self.live()?;
        let row = RowId::from_hex(row_id)?;
        let entry = inner.entries.get(&row)?;
        if inner.good(row, &entry) {
            Some(entry.packed.state(&inner.names))
        } else {
            inner.drop_void(row, &entry);
            None
        }
    }

    /// The state of a session row (its hex id): cached if still good, else
    /// read with `read` and kept. Requests asking for the same row while it
    /// is read wait for that one read instead of each reading it: after a
    /// change, a busy session costs one query, not one per request in flight.
    pub async fn get_or_read<E, Reading>(
        &self,
        row_id: &str,
        read: impl Fn() -> Reading,
    ) -> Result<Option<State>, E>
    where
        Reading: Future<Output = Result<Option<Read>, E>>,
    {
        let (Some(inner), Some(row)) = (self.live(), RowId::from_hex(row_id)) else {
            return Ok(read().await?.map(|(state, ..)| state));
        };
        for _ in 0..READ_ATTEMPTS {
            match inner.entries.get_value_or_guard_async(&row).await {
                Ok(entry) if inner.good(row, &entry) => {
                    return Ok(Some(entry.packed.state(&inner.names)));
                }
                Ok(entry) => inner.drop_void(row, &entry),
                Err(reading) => {
                    let read_at = self.mark();
                    let Some((state, expires_at, owners)) = read().await? else {
                        return Ok(None);
                    };
                    if self.is_live()
                        && let Some(entry) = inner.entry(&state, expires_at, &owners, read_at)
                    {
                        // Refused if a change removed the placeholder meanwhile:
                        // the waiting requests then read again.
                        let _ = reading.insert(Arc::new(entry));
                    }
                    return Ok(Some(state));
                }
            }
        }
        Ok(read().await?.map(|(state, ..)| state))
    }

    /// Keeps a session row read at position `read_at` (from `mark`).
    pub fn put(
        &self,
        row_id: &str,
        state: &State,
        expires_at: DateTime<Utc>,
        owners: Owners,
        read_at: u64,
    ) {
        let Some(inner) = self.live() else { return };
        let Some(row) = RowId::from_hex(row_id) else {
            return;
        };
        if let Some(entry) = inner.entry(state, expires_at, &owners, read_at) {
            inner.entries.insert(row, Arc::new(entry));
        }
    }

    /// Something changed: every entry depending on it is void from now on.
    pub fn changed(&self, subject: Subject) {
        let Some(inner) = self.inner.as_deref() else {
            return;
        };
        let at = inner.clock.tick();
        if let Subject::Session(row) = &subject {
            inner.entries.remove(row);
        }
        let heard = Instant::now();
        inner.changes.insert(subject, Change { at, heard });
        if at % PRUNE_EVERY == 0 {
            let memory = change_memory(inner.life);
            inner
                .changes
                .retain(|_, change| heard.duration_since(change.heard) < memory);
        }
    }

    /// Forgets everything (changes may have gone unheard).
    pub fn clear(&self) {
        if let Some(inner) = self.inner.as_deref() {
            inner.clock.clear();
            inner.entries.clear();
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
        self.inner
            .as_deref()
            .map_or(0, |inner| inner.entries.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const OTHER: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

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

    fn row(hex: &str) -> Subject {
        Subject::Session(RowId::from_hex(hex).expect("a row id"))
    }

    fn of_user(user: i64) -> Owners {
        Owners {
            user: Some(user),
            visitor: None,
        }
    }

    #[test]
    fn keys_name_what_changed() {
        assert_eq!(Subject::parse(&format!("s:{ROW}")), Some(row(ROW)));
        assert_eq!(Subject::parse("s:abc"), None);
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
        cache.put(ROW, &state("a"), later(), of_user(7), cache.mark());
        assert_eq!(cache.get(ROW), Some(state("a")));
        cache.changed(Subject::User(8));
        assert_eq!(cache.get(ROW), Some(state("a")));
        cache.changed(Subject::User(7));
        assert_eq!(cache.get(ROW), None);
    }

    #[test]
    fn a_change_to_the_visitor_voids_the_entry() {
        let cache = live_cache();
        let owners = Owners {
            user: None,
            visitor: Some("v-1".into()),
        };
        cache.put(ROW, &state("a"), later(), owners, cache.mark());
        cache.changed(Subject::Visitor("v-2".into()));
        assert_eq!(cache.get(ROW), Some(state("a")));
        cache.changed(Subject::Visitor("v-1".into()));
        assert_eq!(cache.get(ROW), None);
    }

    #[test]
    fn a_read_that_raced_a_change_is_never_served() {
        let cache = live_cache();
        let read_at = cache.mark();
        // The change is heard while the (old) row is being read.
        cache.changed(row(ROW));
        cache.put(ROW, &state("old"), later(), Owners::default(), read_at);
        assert_eq!(cache.get(ROW), None);
        // Read again after the change: kept.
        cache.put(ROW, &state("new"), later(), Owners::default(), cache.mark());
        assert_eq!(cache.get(ROW), Some(state("new")));
    }

    #[test]
    fn nothing_is_kept_or_served_while_changes_may_go_unheard() {
        let cache = live_cache();
        cache.put(ROW, &state("a"), later(), Owners::default(), cache.mark());
        cache.set_live(false);
        assert_eq!(cache.get(ROW), None);
        cache.put(OTHER, &state("b"), later(), Owners::default(), cache.mark());
        // Back: emptied, since what happened meanwhile is unknown.
        cache.set_live(true);
        assert_eq!(cache.get(ROW), None);
        assert_eq!(cache.get(OTHER), None);
    }

    #[test]
    fn expired_sessions_are_not_served() {
        let cache = live_cache();
        let past = Utc::now() - chrono::Duration::seconds(1);
        cache.put(ROW, &state("a"), past, Owners::default(), cache.mark());
        assert_eq!(cache.get(ROW), None);
    }

    #[test]
    fn pushing_out_a_recent_change_voids_everything_read_before() {
        // Room for 4 changes (4 × capacity 1).
        let cache = SessionCache::new(60, 1);
        cache.set_live(true);
        cache.put(ROW, &state("a"), later(), of_user(1), cache.mark());
        assert_eq!(cache.get(ROW), Some(state("a")));
        for user in 100..120 {
            cache.changed(Subject::User(user));
        }
        assert_eq!(cache.get(ROW), None);
    }

    #[tokio::test]
    async fn requests_for_one_row_at_once_share_one_read() {
        let cache = live_cache();
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(Some((state("a"), later(), Owners::default())))
        };
        let all =
            futures_util::future::join_all((0..20).map(|_| cache.get_or_read(ROW, read))).await;
        assert!(all.iter().all(|got| got == &Ok(Some(state("a")))));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // A change voids it: the next request reads again.
        cache.changed(row(ROW));
        assert_eq!(cache.get_or_read(ROW, read).await, Ok(Some(state("a"))));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn repeated_changes_to_one_subject_void_nothing_else() {
        let cache = live_cache();
        cache.put(ROW, &state("a"), later(), of_user(1), cache.mark());
        for _ in 0..10 {
            cache.changed(Subject::User(2));
        }
        assert_eq!(cache.get(ROW), Some(state("a")));
    }

    #[test]
    fn a_state_comes_back_as_it_was_packed() {
        let state = State::from([
            ("csrf.secret".to_owned(), "\"ab\"".to_owned()),
            ("empty".to_owned(), String::new()),
            ("ünïcode".to_owned(), "«✓»".to_owned()),
        ]);
        let names = Names::new();
        let packed = Packed::new(&state, Some("v-1"), &names).expect("packs");
        assert_eq!(packed.state(&names), state);
        assert_eq!(packed.visitor(), Some("v-1"));
        // Packed again: each name is its one-byte index.
        let again = Packed::new(&state, Some("v-1"), &names).expect("packs");
        assert_eq!(again.state(&names), state);
        assert_eq!(again.0.len(), 1 + 3 + 3 * 2 + 4 + "«✓»".len());
        let packed = Packed::new(&State::new(), None, &names).expect("packs");
        assert_eq!(packed.state(&names), State::new());
        assert_eq!(packed.visitor(), None);
        // A long value: its length takes more than one byte.
        let long_value = State::from([("v".to_owned(), "x".repeat(70_000))]);
        let packed = Packed::new(&long_value, None, &names).expect("packs");
        assert_eq!(packed.state(&names), long_value);
        // A name too long to pack whole, once the names are all taken: the
        // session is not cached.
        for n in 0..NAME_SLOTS {
            Packed::new(
                &State::from([(format!("name {n}"), String::new())]),
                None,
                &names,
            );
        }
        let literal = State::from([("not a known name".to_owned(), "v".to_owned())]);
        let packed = Packed::new(&literal, None, &names).expect("packs");
        assert_eq!(packed.0[1], LITERAL);
        assert_eq!(packed.state(&names), literal);
        let long = State::from([("n".repeat(256), String::new())]);
        assert!(Packed::new(&long, None, &names).is_none());
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = SessionCache::new(0, 100);
        cache.put(ROW, &state("a"), later(), Owners::default(), cache.mark());
        assert_eq!(cache.get(ROW), None);
    }
}
