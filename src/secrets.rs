//! The site secret and the keys derived from it. The secret comes from
//! settings, or (SQLite only) from a file beside the database, generated on
//! first start. It never enters the database: a dump reveals no code.
//! `SealingKey` encrypts what must be stored but not readable there (queued
//! mail bodies, a code waiting in the session to be shown once).

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, Payload};
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
    mail: [u8; 32],
    session_values: [u8; 32],
    self_service: [u8; 32],
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
            mail: hmac_bytes(secret.as_bytes(), b"gatehouse/mail-outbox"),
            session_values: hmac_bytes(secret.as_bytes(), b"gatehouse/session-values"),
            self_service: hmac_bytes(secret.as_bytes(), b"gatehouse/self-service"),
        }
    }

    /// Seals queued mail bodies in `mail_outbox`.
    pub fn mail_key(&self) -> SealingKey {
        SealingKey(self.mail)
    }

    /// Seals values kept briefly in the session (a new code to show once).
    pub fn session_key(&self) -> SealingKey {
        SealingKey(self.session_values)
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

    /// MAC vouching that a page offered self-service access to a scope
    /// (`visitors::self_service`), hex-encoded.
    pub fn self_service_mac(&self, message: &[u8]) -> String {
        hex::encode(hmac_bytes(&self.self_service, message))
    }

    /// MAC for a CSRF nonce.
    pub fn csrf_mac(&self, nonce: &[u8]) -> [u8; 32] {
        hmac_bytes(&self.csrf, nonce)
    }
}

/// An XChaCha20-Poly1305 key. Sealed values are `version ‖ nonce ‖
/// ciphertext+tag`, with a random 24-byte nonce each time. The associated
/// data binds a value to its context (e.g. a mail body to its recipient), so
/// a sealed value moved to another row no longer opens.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// A sealed value that does not open: tampered with, moved, or sealed with
/// another secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value does not open with this secret key (tampered with, or the key changed)")]
pub struct OpenError;

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = nonce_rng().random();
        let sealed = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let Some((&SEALED_VERSION, rest)) = sealed.split_first() else {
            return Err(OpenError);
        };
        if rest.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
        self.cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| OpenError)
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

/// The token of a single-use link (reset, e-mail change): 32 random bytes,
/// hex-encoded, with the SHA-256 that is all the database keeps.
pub fn new_link_token() -> (String, String) {
    let token = generate_secret();
    let hash = sha256_hex(token.as_bytes());
    (token, hash)
}

/// The stored hash of a link token as typed; `None` when it cannot be one.
pub fn link_token_hash(token: &str) -> Option<String> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| sha256_hex(token.to_ascii_lowercase().as_bytes()))
}

/// A fresh random secret: 32 bytes from the OS, hex-encoded.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = os_rng().random();
    hex::encode(bytes)
}

/// For per-request nonces (CSRF tokens, sealing, visit ids): rand's thread
/// CSPRNG (ChaCha, seeded from and periodically reseeded by the OS), which
/// costs no system call per value.
pub fn nonce_rng() -> rand::rngs::ThreadRng {
    rand::rng()
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
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let keys = Keys::derive(&"k".repeat(40));
        let key = keys.mail_key();
        let sealed = key.seal(b"to:fred@example.org", b"your code is ABCDEF234");
        assert!(!String::from_utf8_lossy(&sealed).contains("ABCDEF234"));
        assert_eq!(
            key.open(b"to:fred@example.org", &sealed).as_deref(),
            Ok(&b"your code is ABCDEF234"[..])
        );
        assert_eq!(key.open(b"to:eve@example.org", &sealed), Err(OpenError));
        assert_eq!(
            keys.session_key().open(b"to:fred@example.org", &sealed),
            Err(OpenError)
        );
        let other = Keys::derive(&"x".repeat(40)).mail_key();
        assert_eq!(other.open(b"to:fred@example.org", &sealed), Err(OpenError));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(b"to:fred@example.org", &tampered), Err(OpenError));
        assert_eq!(key.open(b"", &[]), Err(OpenError));
        assert_eq!(key.open(b"", &[1, 2, 3]), Err(OpenError));
        // A fresh nonce each time: the same message seals differently.
        assert_ne!(
            sealed,
            key.seal(b"to:fred@example.org", b"your code is ABCDEF234")
        );
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
