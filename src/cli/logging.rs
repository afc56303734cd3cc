//! Logging for the command line: `serve` logs at `log.filter`; the other
//! commands talk through their output and log warnings only.
//!
//! A request that logs (the access log: one line per request) only formats
//! its line and hands it to a channel; one thread writes the lines to
//! stderr in batches. So no request waits on the terminal or holds the
//! stderr lock, and `flush` (called before the process ends) writes what
//! is still queued.

use std::io::Write;
use std::sync::mpsc;

use crate::settings::Settings;

/// Installs the logger; `RUST_LOG` still wins over `quiet` and `log.filter`.
pub fn init(settings: &Settings, quiet: bool) {
    let filter = if quiet {
        "warn"
    } else {
        settings.log.filter.as_str()
    };
    let env = env_logger::Env::default().default_filter_or(filter);
    // env_logger's filter (RUST_LOG syntax); the writing is ours.
    let filter = env_logger::Builder::from_env(env).build();
    let max_level = filter.filter();
    let (lines, queue) = mpsc::channel();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(&queue))
        .expect("a thread for the log");
    // Only fails when a logger is already set, which nothing here does.
    if log::set_boxed_logger(Box::new(QueuedLog { filter, lines })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Writes everything logged so far before returning (the process is about
/// to end).
pub fn flush() {
    log::logger().flush();
}

enum Queued {
    Line(String),
    Flush(mpsc::Sender<()>),
}

/// Filters like env_logger, without sea-orm's driver traces (at `trace` its
/// `connect` span prints the connection options, the database URL's
/// password included, sea-orm 2.0.4), and queues the line.
struct QueuedLog {
    filter: env_logger::Logger,
    lines: mpsc::Sender<Queued>,
}

impl log::Log for QueuedLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let driver_trace = metadata.level() == log::Level::Trace
            && metadata.target().starts_with("sea_orm::driver");
        !driver_trace && self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) && self.filter.matches(record) {
            let line = format!(
                "[{} {:<5} {}] {}\n",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                record.level(),
                record.target(),
                record.args()
            );
            let _ = self.lines.send(Queued::Line(line));
        }
    }

    fn flush(&self) {
        let (done, flushed) = mpsc::channel();
        if self.lines.send(Queued::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// The writer thread: whatever is queued, in one write, then waits for more.
fn write_lines(queue: &mpsc::Receiver<Queued>) {
    let mut batch = String::new();
    let mut flushed = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        while let Some(queued) = next.take() {
            match queued {
                Queued::Line(line) => batch.push_str(&line),
                Queued::Flush(done) => flushed.push(done),
            }
            if batch.len() < 64 * 1024 {
                next = queue.try_recv().ok();
            }
        }
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(batch.as_bytes());
        let _ = stderr.flush();
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}
