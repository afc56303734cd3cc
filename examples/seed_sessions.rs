//! Copies a visitor's session N times, each under a new key, as the server
//! would store it, and prints each copy's signed cookie value, one a line.
//! `bench/hot-path.sh` uses it to fill the session cache with 100 000
//! sessions in seconds (through HTTP it would take minutes).
//!
//! The copies are written in one transaction, 500 rows per INSERT … SELECT
//! from the original row (a row at a time through the session store took
//! 40 s for 100 000). A row's id is the SHA-256 of its key, as the store
//! makes it.
//!
//! Reads the same settings and database as `gatehouse serve`.
//! Usage: `seed_sessions N`.

use std::io::Write;

use actix_web::cookie::{Cookie, CookieJar};
use gatehouse::AppState;
use gatehouse::secrets::sha256_hex;
use gatehouse::settings::Settings;
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

const ROWS_PER_INSERT: usize = 500;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let copies: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("usage: seed_sessions N"))?;
    let (state, _) = AppState::init(Settings::load()?).await?;
    let backend = state.db.get_database_backend();
    let original: String = state
        .db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT id FROM sessions WHERE visitor_id IS NOT NULL LIMIT 1",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no visitor session to copy"))?
        .try_get("", "id")?;
    let keys: Vec<String> = (0..copies)
        .map(|_| Alphanumeric.sample_string(&mut rand::rng(), 64))
        .collect();
    let txn = gatehouse::db::write_transaction(&state.db).await?;
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let placeholder = |n: usize| match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        };
        let rows = (1..=chunk.len())
            .map(|n| format!("({})", placeholder(n)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO sessions (id, user_id, visitor_id, invite_id, invite_revoked, data, \
             expires_at, started_at, last_seen_at, user_agent, client_ip) \
             SELECT copy.column1, s.user_id, s.visitor_id, s.invite_id, s.invite_revoked, s.data, \
             s.expires_at, s.started_at, s.last_seen_at, s.user_agent, s.client_ip \
             FROM (VALUES {rows}) AS copy, sessions s WHERE s.id = {}",
            placeholder(chunk.len() + 1)
        );
        let values = chunk
            .iter()
            .map(|key| Value::from(sha256_hex(key.as_bytes())))
            .chain([Value::from(original.clone())]);
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    txn.commit().await?;
    let cookie_key = state.keys.cookie_key();
    let name = state.settings.session_cookie_name();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for key in keys {
        let mut jar = CookieJar::new();
        jar.signed_mut(&cookie_key)
            .add(Cookie::new(name.clone(), key));
        let cookie = jar.get(&name).expect("just added");
        writeln!(out, "{}", cookie.value())?;
    }
    out.flush()?;
    Ok(())
}
