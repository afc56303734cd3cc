//! Copies a visitor's session N times, each under a new key, as the server
//! would store it, and prints each copy's signed cookie value, one a line.
//! `bench/hot-path.sh` uses it to fill the session cache with 100 000
//! sessions in seconds (through HTTP it would take minutes).
//!
//! Reads the same settings and database as `gatehouse serve`.
//! Usage: `seed_sessions N`.

use std::collections::HashMap;
use std::io::Write;

use actix_session::storage::SessionStore;
use actix_web::cookie::{Cookie, CookieJar, time::Duration};
use gatehouse::AppState;
use gatehouse::settings::Settings;
use gatehouse::web::session_cache::SessionCache;
use gatehouse::web::sessions::DbSessionStore;
use sea_orm::{ConnectionTrait, Statement};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let copies: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("usage: seed_sessions N"))?;
    let (state, _) = AppState::init(Settings::load()?).await?;
    let backend = state.db.get_database_backend();
    let newest = state
        .db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT data FROM sessions WHERE visitor_id IS NOT NULL LIMIT 1",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no visitor session to copy"))?;
    let data: String = newest.try_get("", "data")?;
    let data: HashMap<String, String> = serde_json::from_str(&data)?;
    let settings = &state.settings;
    let store = DbSessionStore::new(
        state.db.clone(),
        &settings.visitors.session_key,
        state.keys.session_key(),
        SessionCache::disabled(),
    );
    let ttl = Duration::days(settings.sessions.lifetime_days.into());
    let cookie_key = state.keys.cookie_key();
    let name = settings.session_cookie_name();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..copies {
        let key = store.save(data.clone(), &ttl).await;
        let mut jar = CookieJar::new();
        jar.signed_mut(&cookie_key)
            .add(Cookie::new(name.clone(), key?.as_ref().to_owned()));
        let cookie = jar.get(&name).expect("just added");
        writeln!(out, "{}", cookie.value())?;
    }
    out.flush()?;
    Ok(())
}
