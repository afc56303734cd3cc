//! Visit log rows. Handlers do not wait for them: rows go through a bounded
//! channel to one writer task that inserts them in batches. Only when the
//! database falls so far behind that the channel is full does a request wait
//! for room, so no row is dropped and memory stays bounded. A failing write
//! is logged and never fails a request; at shutdown the writer drains the
//! channel first, so a clean stop loses nothing.

use std::sync::Mutex;

use actix_web::HttpRequest;
use actix_web::http::header;
use chrono::Utc;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use tokio::sync::{mpsc, oneshot};

use super::tokens::{token_keys, url_without_token, without_token};
use crate::entities::visitor_logs;
use crate::secrets::sha256_hex;
use crate::settings::Settings;
use crate::web::client::client_ip;

/// Rows waiting beyond this make requests wait (backpressure) rather than
/// letting memory grow when the database cannot keep up.
const QUEUE_CAPACITY: usize = 10_000;
/// Rows per transaction, and at most per INSERT statement (bound parameters
/// stay well inside SQLite's and PostgreSQL's limits).
const BATCH: usize = 2_000;
const ROWS_PER_STATEMENT: usize = 256;

enum Message {
    Row(Box<visitor_logs::ActiveModel>),
    /// Reply once everything sent before has been written.
    Flush(oneshot::Sender<()>),
}

pub struct VisitLog {
    sender: mpsc::Sender<Message>,
    receiver: Mutex<Option<mpsc::Receiver<Message>>>,
}

impl Default for VisitLog {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl VisitLog {
    /// Queues a row; waits only while the queue is full.
    pub async fn record(&self, row: visitor_logs::ActiveModel) {
        if let Err(mpsc::error::TrySendError::Full(row)) =
            self.sender.try_send(Message::Row(Box::new(row)))
        {
            let _ = self.sender.send(row).await;
        }
    }

    /// Starts the writer (once; later calls do nothing).
    pub fn start_writer(&self, db: DatabaseConnection) {
        let Some(mut receiver) = self.receiver.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        tokio::spawn(async move {
            let mut rows = Vec::with_capacity(BATCH);
            let mut waiting = Vec::new();
            while let Some(first) = receiver.recv().await {
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Message::Row(row) => rows.push(*row),
                        Message::Flush(reply) => waiting.push(reply),
                    }
                    if rows.len() < BATCH {
                        next = receiver.try_recv().ok();
                    }
                }
                write(&db, &mut rows).await;
                for reply in waiting.drain(..) {
                    let _ = reply.send(());
                }
            }
        });
    }

    /// Waits until every row queued so far is written (tests, shutdown).
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn write(db: &DatabaseConnection, rows: &mut Vec<visitor_logs::ActiveModel>) {
    if rows.is_empty() {
        return;
    }
    let count = rows.len();
    let written = async {
        let txn = crate::db::write_transaction(db).await?;
        while !rows.is_empty() {
            // Statements of 256, 128, …, 1 rows: a handful of shapes, so the
            // driver's prepared-statement cache holds a few statements per
            // connection instead of one per batch size (each of them large).
            let size = prev_power_of_two(rows.len().min(ROWS_PER_STATEMENT));
            let chunk: Vec<_> = rows.drain(..size).collect();
            visitor_logs::Entity::insert_many(chunk).exec(&txn).await?;
        }
        txn.commit().await
    };
    if let Err(err) = written.await {
        rows.clear();
        log::error!("Could not write {count} visit log rows: {err}");
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 { 0 } else { 1 << n.ilog2() }
}

/// A log row for this request.
pub fn row_for(
    req: &HttpRequest,
    settings: &Settings,
    visitor_id: &str,
    visit_id: Option<&str>,
    status: u16,
) -> visitor_logs::ActiveModel {
    let keys = token_keys(&settings.visitors.querystring_key);
    let header_text = |name: header::HeaderName, max: usize| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(max).collect::<String>())
            .unwrap_or_default()
    };
    visitor_logs::ActiveModel {
        visitor_id: Set(visitor_id.to_owned()),
        session_hash: Set(visit_id
            .map(|id| sha256_hex(id.as_bytes()))
            .unwrap_or_default()),
        http_method: Set(req.method().as_str().chars().take(10).collect()),
        request_path: Set(without_token(req.path(), req.query_string(), &keys)
            .chars()
            .take(2000)
            .collect()),
        status_code: Set(i32::from(status)),
        remote_addr: Set(client_ip(req, &settings.server.trusted_proxies)),
        user_agent: Set(header_text(header::USER_AGENT, 1000)),
        referer: Set(url_without_token(
            &header_text(header::REFERER, 2000),
            &keys,
        )),
        timestamp: Set(Utc::now()),
        ..Default::default()
    }
}
