//! What the session cache costs in memory: fills a cache with 100 000
//! sessions shaped like real ones (the state a logged-in member or a
//! visitor carries, plus the member's or visitor's row loaded with it, as
//! `loaded_form` keeps it; the session id is known from the key and not
//! kept) and prints the resident memory it added, in all and per entry.
//! `bench/hot-path.sh` quotes it. Linux only (reads /proc/self/status).
//!
//! Usage: `session_cache_memory [member|visitor]` (default member).
//! Prints `entries=N added_mb=M bytes_per_entry=B`.

use chrono::{Duration, Utc};
use gatehouse::entities::{users, visitors};
use gatehouse::web::session_cache::{Owners, SessionCache, State};
use gatehouse::web::sessions::{LOADED_USER_KEY, LOADED_VISITOR_KEY, loaded_form};

/// The server's allocator, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn member_state(n: i64) -> State {
    let user = users::Model {
        id: n,
        site_id: 1,
        username: format!("member{n}"),
        email: format!("member{n}@example.org"),
        first_name: "Maria".into(),
        last_name: "Lopez".into(),
        phone: "555-0100".into(),
        // As loaded: whether there is a password, not the hash.
        password_hash: Some(String::new()),
        is_staff: false,
        is_active: true,
        created_at: Utc::now(),
        last_login_at: Some(Utc::now()),
        deleted_at: None,
    };
    State::from([
        ("actix_identity.user_id".into(), format!("\"{n}\"")),
        ("actix_identity.logged_in_at".into(), "1764590400".into()),
        ("csrf.secret".into(), format!("\"{:064x}\"", n)),
        (LOADED_USER_KEY.into(), loaded_form(&user).expect("json")),
    ])
}

/// A visitor session's state as `read_row` returns it, for visitor `n`.
fn visitor_state(n: i64) -> State {
    let visitor_id = format!("{:08x}-84a7-4100-bce5-db560f85167d", n);
    let created = Utc::now();
    let visitor = visitors::Model {
        id: visitor_id.clone(),
        site_id: 1,
        token_hash: String::new(),
        scope: "demo".to_owned(),
        first_name: "Ginger".to_owned(),
        last_name: String::new(),
        email: "ginger@example.org".to_owned(),
        context: None,
        created_at: created,
        expires_at: created + Duration::days(14),
        is_active: true,
        session_expiry_secs: 0,
        created_by: None,
        ended_reason: None,
        ended_at: None,
    };
    State::from([
        ("visitor:cookie-seconds".to_owned(), "0".to_owned()),
        ("csrf.secret".to_owned(), format!("\"{:064x}\"", n)),
        ("visitor:session".to_owned(), format!("\"{visitor_id}\"")),
        ("visitor:visit-id".to_owned(), format!("\"{:032x}\"", n)),
        (
            LOADED_VISITOR_KEY.to_owned(),
            loaded_form(&visitor).expect("serialises"),
        ),
    ])
}

fn main() {
    let visitors = std::env::args().nth(1).as_deref() == Some("visitor");
    let entries: i64 = 100_000;
    let cache = SessionCache::new(3600, entries as u64);
    cache.set_live(true);
    let before = resident_kib();
    let expires_at = Utc::now() + Duration::days(14);
    for n in 0..entries {
        let row_id = format!("{:064x}", n * 104_729);
        let (state, owners) = if visitors {
            let state = visitor_state(n);
            let visitor = state["visitor:session"].trim_matches('"').to_owned();
            (
                state,
                Owners {
                    user: None,
                    visitor: Some(visitor),
                },
            )
        } else {
            let owners = Owners {
                user: Some(n),
                visitor: None,
            };
            (member_state(n), owners)
        };
        cache.put(&row_id, &state, expires_at, owners, cache.mark());
    }
    let held = cache.len();
    let added = resident_kib().saturating_sub(before);
    println!(
        "entries={held} added_mb={:.1} bytes_per_entry={}",
        added as f64 / 1024.0,
        added * 1024 / held.max(1)
    );
}
