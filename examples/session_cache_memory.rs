//! What the session cache costs in memory: fills a cache with 100 000
//! member sessions shaped like real ones (the state a logged-in member
//! carries, plus the member row loaded with it; the session id is known
//! from the key and not kept) and prints the resident
//! memory it added, in all and per entry. `bench/hot-path.sh` quotes it.
//!
//! Prints `entries=N added_mb=M bytes_per_entry=B`.

use std::collections::HashMap;

use chrono::Utc;
use gatehouse::entities::users;
use gatehouse::web::session_cache::{Owners, SessionCache};

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

fn member_state(n: i64) -> HashMap<String, String> {
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
    HashMap::from([
        ("actix_identity.user_id".into(), format!("\"{n}\"")),
        ("actix_identity.logged_in_at".into(), "1764590400".into()),
        ("csrf.secret".into(), format!("\"{:064x}\"", n)),
        (
            "gatehouse.loaded-user".into(),
            serde_json::to_string(&user).expect("json"),
        ),
    ])
}

fn main() {
    let entries: i64 = 100_000;
    let cache = SessionCache::new(3600, entries as u64);
    cache.set_live(true);
    let before = resident_kib();
    let expires_at = Utc::now() + chrono::Duration::days(14);
    for n in 0..entries {
        let row_id = format!("{:064x}", n * 104_729);
        let owners = Owners {
            user: Some(n),
            visitor: None,
        };
        cache.put(&row_id, &member_state(n), expires_at, owners, cache.mark());
    }
    let held = cache.len();
    let added = resident_kib().saturating_sub(before);
    println!(
        "entries={held} added_mb={:.1} bytes_per_entry={}",
        added as f64 / 1024.0,
        added * 1024 / held.max(1)
    );
}
