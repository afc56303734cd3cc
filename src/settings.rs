//! Typed settings, loaded once at start: built-in defaults (`config/default.toml`,
//! compiled in so the binary works from any directory), then
//! `config/{GATEHOUSE_ENV}.toml` if present, then `GATEHOUSE__SECTION__KEY`
//! environment variables. Unknown keys and out-of-range values refuse to start.

pub mod mail;

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Invitation code lengths the format allows (letters + 3 digits).
pub const CODE_LENGTH_RANGE: std::ops::RangeInclusive<usize> = 6..=30;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not read the settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// A secret string whose `Debug` never prints the value.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub secret_key: Secret,
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub invites: InviteSettings,
    pub visitors: VisitorSettings,
    pub references: ReferenceSettings,
    pub sessions: SessionSettings,
    pub passwords: PasswordSettings,
    pub security: SecuritySettings,
    pub mail: MailSettings,
    pub log: LogSettings,
    pub audit: AuditSettings,
    pub purge: PurgeSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub base_url: String,
    pub site_name: String,
    pub workers: usize,
    pub max_body_kb: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The zone every date people see is shown in (an IANA name).
    pub time_zone: crate::dates::Zone,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteSettings {
    pub code_length: usize,
    pub usage_window_days: u32,
    pub expiry_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorSettings {
    pub querystring_key: String,
    pub session_key: String,
    pub token_expiry_days: u32,
    pub retention_days: u32,
    pub confirm_on_link: bool,
    /// Seconds an anonymous visitor session lasts, for links that do not
    /// say (0: until the browser closes).
    pub session_expiry_secs: u32,
    pub session_expiry_mode: SessionExpiryMode,
    /// "Request access" (self-service passes) per client address per hour.
    pub self_service_per_address_per_hour: u32,
    /// … and per e-mail address asked for, per hour.
    pub self_service_per_email_per_hour: u32,
}

/// How a visitor session's seconds count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionExpiryMode {
    /// From the moment the link was used.
    Absolute,
    /// From the visitor's latest request (django-visitors' `set_expiry`).
    Idle,
}

/// The longest visitor session a setting or a link may ask for.
pub const MAX_VISITOR_SESSION_SECS: u32 = 366 * 24 * 3600;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSettings {
    pub max_requests_per_day: u32,
    pub retention_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    Database,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub store: SessionStoreKind,
    pub cookie_name: String,
    pub lifetime_days: u32,
    /// Seconds a session read stays in this process's cache (0: no cache).
    /// Writes evict at once, on every instance; this only bounds the
    /// damage of a missed change.
    pub cache_seconds: u64,
    /// Sessions the cache holds at most.
    pub cache_capacity: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptchaMode {
    Off,
    AfterFailures,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    Smtp,
    File,
    Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub account_max_failures: u32,
    pub ip_max_failures: u32,
    pub window_minutes: u32,
    pub code_guesses_per_hour: u32,
    pub captcha: CaptchaMode,
    /// Failures of one account that bring the captcha for that account.
    pub captcha_after_failures: u32,
    /// Failures from one address (any account) that bring it for everyone
    /// there: higher, as offices and homes share an address.
    pub captcha_after_address_failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    /// Holds the SMTP password when there is one, so it is never printed.
    pub smtp_url: Secret,
    pub from: String,
    pub file_dir: PathBuf,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub poll_interval_ms: u64,
    pub concurrency: usize,
    pub tls_roots: MailTlsRoots,
    /// A PEM file of extra CA certificates to trust; empty for none.
    pub tls_ca_file: PathBuf,
    /// Days a delivered (or cancelled) message's row is kept.
    pub retention_days: u32,
}

/// Which certificate authorities vouch for the mail server's TLS certificate
/// (besides `mail.tls_ca_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTlsRoots {
    /// The Mozilla roots compiled into the binary.
    Webpki,
    /// The operating system's store.
    System,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Days an audit log row is kept.
    pub retention_days: u32,
}

/// The purge `serve` runs by itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeSettings {
    /// Minutes between runs (across all instances); 0 switches it off.
    pub interval_minutes: u32,
    /// Seconds between each instance's checks whether a run is due.
    pub poll_seconds: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
}

impl Settings {
    /// Loads settings from the defaults, `config/{env}.toml` and the environment.
    /// `config_dir` is where environment files are looked for (default `config`).
    pub fn load() -> Result<Self, SettingsError> {
        let env_name = std::env::var("GATEHOUSE_ENV").ok();
        let config_dir = std::env::var("GATEHOUSE_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(env_name) = env_name.filter(|name| !name.is_empty()) {
            let path = PathBuf::from(config_dir).join(format!("{env_name}.toml"));
            builder = builder.add_source(config::File::from(path).required(false));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("GATEHOUSE")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone (used by tests, which then adjust fields).
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .expect("the compiled-in config/default.toml is valid")
    }

    /// Checks ranges and combinations that serde cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !CODE_LENGTH_RANGE.contains(&self.invites.code_length) {
            return Err(invalid(
                "invites.code_length",
                format!(
                    "must be between {} and {} (got {})",
                    CODE_LENGTH_RANGE.start(),
                    CODE_LENGTH_RANGE.end(),
                    self.invites.code_length
                ),
            ));
        }
        let base = url::Url::parse(&self.server.base_url).map_err(|err| {
            invalid(
                "server.base_url",
                format!("{err} (expected e.g. https://club.example.org)"),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid(
                "server.base_url",
                "must be an http:// or https:// address with a host",
            ));
        }
        if self.database_backend().is_none() {
            return Err(invalid(
                "database.url",
                "must start with sqlite:// or postgres:// (or postgresql://)",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.passwords.min_length < 8 {
            return Err(invalid("passwords.min_length", "must be at least 8"));
        }
        if !self.secret_key.is_empty() && self.secret_key.expose().trim().len() < 32 {
            return Err(invalid(
                "secret_key",
                "must be at least 32 characters; make one with `gatehouse secret`",
            ));
        }
        self.validate_visitors()?;
        let security = &self.security;
        if security.account_max_failures == 0
            || security.ip_max_failures == 0
            || security.code_guesses_per_hour == 0
            || security.window_minutes == 0
        {
            return Err(invalid(
                "security",
                "account_max_failures, ip_max_failures, code_guesses_per_hour and \
                 window_minutes must be at least 1",
            ));
        }
        if self.sessions.lifetime_days == 0 {
            return Err(invalid("sessions.lifetime_days", "must be at least 1"));
        }
        if self.purge.poll_seconds == 0 {
            return Err(invalid("purge.poll_seconds", "must be at least 1"));
        }
        if self.audit.retention_days == 0 {
            return Err(invalid("audit.retention_days", "must be at least 1"));
        }
        self.validate_mail()
    }

    fn validate_visitors(&self) -> Result<(), SettingsError> {
        let key = &self.visitors.querystring_key;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "visitors.querystring_key",
                "must be letters, digits or _ (e.g. vid)",
            ));
        }
        if self.visitors.session_key.is_empty() {
            return Err(invalid("visitors.session_key", "must not be empty"));
        }
        if self.visitors.session_expiry_secs > MAX_VISITOR_SESSION_SECS {
            return Err(invalid(
                "visitors.session_expiry_secs",
                format!("must be at most {MAX_VISITOR_SESSION_SECS} (a year)"),
            ));
        }
        if self.visitors.token_expiry_days == 0 {
            return Err(invalid("visitors.token_expiry_days", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_mail(&self) -> Result<(), SettingsError> {
        let mail = &self.mail;
        if let Err(problem) = mail::parse_from(&mail.from) {
            return Err(invalid("mail.from", problem));
        }
        if mail.transport == MailTransportKind::Smtp
            && let Err(problem) = mail::check_smtp_url(mail.smtp_url.expose())
        {
            return Err(invalid("mail.smtp_url", problem));
        }
        if mail.max_attempts == 0 {
            return Err(invalid("mail.max_attempts", "must be at least 1"));
        }
        if mail.retry_base_ms == 0 || mail.retry_max_ms < mail.retry_base_ms {
            return Err(invalid(
                "mail.retry_base_ms",
                "must be at least 1, and retry_max_ms at least retry_base_ms",
            ));
        }
        if mail.poll_interval_ms < 10 {
            return Err(invalid("mail.poll_interval_ms", "must be at least 10"));
        }
        if !(1..=64).contains(&mail.concurrency) {
            return Err(invalid("mail.concurrency", "must be between 1 and 64"));
        }
        if mail.timeout_secs == 0 {
            return Err(invalid("mail.timeout_secs", "must be at least 1"));
        }
        Ok(())
    }

    pub fn database_backend(&self) -> Option<Backend> {
        let url = self.database.url.as_str();
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The SQLite database file, when the database is a SQLite file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database.url.strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" || self.database.url.contains("mode=memory") {
            return None;
        }
        Some(PathBuf::from(path))
    }

    /// True when the public address is https, so cookies must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.server.base_url.starts_with("https://")
    }

    /// The session cookie's name: on https sites with the `__Host-` prefix,
    /// so browsers take it only from this host, over https, for the whole site.
    pub fn session_cookie_name(&self) -> String {
        let name = &self.sessions.cookie_name;
        if self.is_https() && !name.starts_with("__Host-") {
            format!("__Host-{name}")
        } else {
            name.clone()
        }
    }

    /// `base_url` without a trailing slash, for building absolute links.
    pub fn base_url(&self) -> &str {
        self.server.base_url.trim_end_matches('/')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let settings = Settings::defaults();
        settings.validate().expect("defaults validate");
        assert_eq!(settings.invites.code_length, 9);
        assert_eq!(settings.sqlite_path(), Some(PathBuf::from("gatehouse.db")));
    }

    #[test]
    fn code_length_outside_six_to_thirty_is_refused_with_the_key_named() {
        for bad in [0, 5, 31, 100] {
            let mut settings = Settings::defaults();
            settings.invites.code_length = bad;
            let message = settings.validate().expect_err("refused").to_string();
            assert!(message.contains("invites.code_length"), "{message}");
            assert!(message.contains("between 6 and 30"), "{message}");
        }
        for good in [6, 9, 30] {
            let mut settings = Settings::defaults();
            settings.invites.code_length = good;
            settings.validate().expect("accepted");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("hunter2hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        let mut settings = Settings::defaults();
        settings.database.url = "sqlite:///var/lib/gh/site.db?mode=rwc".into();
        assert_eq!(
            settings.sqlite_path(),
            Some(PathBuf::from("/var/lib/gh/site.db"))
        );
        settings.database.url = "sqlite::memory:".into();
        assert_eq!(settings.sqlite_path(), None);
    }
}
