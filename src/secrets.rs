//! The site secret and the keys derived from it. The secret comes from
//! settings, or (SQLite only) from a file beside the database, generated on
//! first start. It never enters the database: a dump reveals no code.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::settings::{Backend, Settings};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret_key must be set when using PostgreSQL, and be the same for every instance. \
         Make one with `gatehouse secret` and set it as GATEHOUSE__SECRET_KEY \
         (or secret_key in config/{{GATEHOUSE_ENV}}.toml)"
    )]
    MissingForPostgres,
    #[error("could not read the secret key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write the secret key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret key file {path} holds fewer than 32 characters; delete it to make a new one"
    )]
    TooShort { path: PathBuf },
}

/// Where the secret came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Settings,
    File(PathBuf),
    Generated(PathBuf),
    /// In-memory SQLite: a key that lives as long as the process.
    Ephemeral,
}

/// Keys derived from the site secret, one per purpose, so that no two
/// mechanisms ever share a key.
#[derive(Clone)]
pub struct Keys {
    cookie: [u8; 32],
    codes: [u8; 32],
    csrf: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Keys {
    pub fn derive(secret: &str) -> Self {
        Self {
            cookie: hmac_bytes(secret.as_bytes(), b"gatehouse/cookie"),
            codes: hmac_bytes(secret.as_bytes(), b"gatehouse/invite-codes"),
            csrf: hmac_bytes(secret.as_bytes(), b"gatehouse/csrf"),
        }
    }

    /// Key for signing session cookies.
    pub fn cookie_key(&self) -> actix_web::cookie::Key {
        actix_web::cookie::Key::derive_from(&self.cookie)
    }

    /// HMAC-SHA256 of a normalised invitation code, hex-encoded: what the
    /// `invites.code_hmac` column stores and is looked up by.
    pub fn code_hmac(&self, normalised_code: &str) -> String {
        hex::encode(hmac_bytes(&self.codes, normalised_code.as_bytes()))
    }

    /// MAC for a CSRF nonce.
    pub fn csrf_mac(&self, nonce: &[u8]) -> [u8; 32] {
        hmac_bytes(&self.csrf, nonce)
    }
}

fn hmac_bytes(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of a value, hex-encoded (for tokens looked up by hash).
pub fn sha256_hex(value: &[u8]) -> String {
    hex::encode(Sha256::digest(value))
}

/// A fresh random secret: 32 bytes from the OS, hex-encoded.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = os_rng().random();
    hex::encode(bytes)
}

/// The operating system's CSPRNG, for secrets, codes and tokens.
/// (A failure of the OS source is unrecoverable, so it panics.)
pub fn os_rng() -> rand::rand_core::UnwrapErr<rand::rngs::SysRng> {
    rand::rand_core::UnwrapErr(rand::rngs::SysRng)
}

/// Finds the secret for these settings, generating and storing one beside a
/// SQLite database file when none is configured.
pub fn resolve(settings: &Settings) -> Result<(String, SecretSource), SecretError> {
    if !settings.secret_key.is_empty() {
        return Ok((
            settings.secret_key.expose().trim().to_owned(),
            SecretSource::Settings,
        ));
    }
    if settings.database_backend() == Some(Backend::Postgres) {
        return Err(SecretError::MissingForPostgres);
    }
    let Some(db_path) = settings.sqlite_path() else {
        return Ok((generate_secret(), SecretSource::Ephemeral));
    };
    let path = secret_file_for(&db_path);
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .map_err(|source| SecretError::Read {
                path: path.clone(),
                source,
            })?
            .trim()
            .to_owned();
        if secret.len() < 32 {
            return Err(SecretError::TooShort { path });
        }
        return Ok((secret, SecretSource::File(path)));
    }
    let secret = generate_secret();
    write_private(&path, &secret).map_err(|source| SecretError::Write {
        path: path.clone(),
        source,
    })?;
    Ok((secret, SecretSource::Generated(path)))
}

/// `site.db` → `site.db.secret`, in the same directory.
pub fn secret_file_for(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".secret");
    PathBuf::from(name)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{contents}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_purpose_and_per_secret() {
        let a = Keys::derive("a".repeat(40).as_str());
        let b = Keys::derive("b".repeat(40).as_str());
        assert_ne!(a.code_hmac("ABCDEF234"), b.code_hmac("ABCDEF234"));
        assert_ne!(a.codes, a.csrf);
        assert_ne!(a.cookie, a.codes);
        assert_eq!(a.code_hmac("ABCDEF234").len(), 64);
    }

    #[test]
    fn a_generated_secret_is_written_once_and_then_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::defaults();
        let db = dir.path().join("site.db");
        settings.database.url = format!("sqlite://{}?mode=rwc", db.display());
        let (first, source) = resolve(&settings).expect("generated");
        assert!(matches!(source, SecretSource::Generated(_)));
        let (second, source) = resolve(&settings).expect("read back");
        assert!(matches!(source, SecretSource::File(_)));
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_file_for(&db))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn postgres_without_a_secret_refuses_and_says_how_to_make_one() {
        let mut settings = Settings::defaults();
        settings.database.url = "postgres://localhost/gatehouse".into();
        let err = resolve(&settings).expect_err("refused");
        assert!(err.to_string().contains("gatehouse secret"));
    }
}
