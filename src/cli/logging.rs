//! Logging for the command line: `serve` logs at `log.filter`; the other
//! commands talk through their output and log warnings only.

use crate::settings::Settings;

/// Installs the logger; `RUST_LOG` still wins over `quiet` and `log.filter`.
pub fn init(settings: &Settings, quiet: bool) {
    let filter = if quiet {
        "warn"
    } else {
        settings.log.filter.as_str()
    };
    let env = env_logger::Env::default().default_filter_or(filter);
    let logger = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .build();
    let max_level = logger.filter();
    // Only fails when a logger is already set, which nothing here does.
    if log::set_boxed_logger(Box::new(WithoutDriverTrace(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}

/// env_logger without sea-orm's driver traces: at `trace` its `connect`
/// span prints the connection options, the database URL's password
/// included (sea-orm 2.0.4), and nothing else there is worth that.
struct WithoutDriverTrace(env_logger::Logger);

impl log::Log for WithoutDriverTrace {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let driver_trace = metadata.level() == log::Level::Trace
            && metadata.target().starts_with("sea_orm::driver");
        !driver_trace && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
