//! Password hashes made by Django, kept as they were when members were
//! imported (`gatehouse import django`), so that old passwords keep working:
//! `pbkdf2_sha256$…` (Django's default), `pbkdf2_sha1$…`, `argon2$…`,
//! `bcrypt_sha256$…` and `bcrypt$…`. Verification uses the RustCrypto
//! `pbkdf2`, `argon2` and the `bcrypt` crates and compares in constant time;
//! it runs on the hashing threads like every other hash (`passwords`). On the
//! first successful login the password is hashed again with argon2id, as
//! Django's hasher upgrade does.
//!
//! Anything else (`md5$`, `sha1$`, `crypt$`, unsalted hashes, `scrypt$`, a
//! damaged value) cannot be verified here: the import leaves such accounts
//! without a password, to be set by a reset.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// More PBKDF2 rounds than this is not a real hash but a way to make every
/// login attempt on the account burn minutes of CPU: refused.
pub const MAX_PBKDF2_ITERATIONS: u32 = 20_000_000;

/// A Django hash Gatehouse can verify, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DjangoHash {
    Pbkdf2 {
        sha1: bool,
        iterations: u32,
        salt: String,
        expected: Vec<u8>,
    },
    /// The PHC string after Django's `argon2` prefix (`$argon2id$v=19$…`).
    Argon2(String),
    /// A bcrypt hash (`$2b$12$…`); with `prehash`, of the SHA-256 hex of the
    /// password (`bcrypt_sha256`).
    Bcrypt { prehash: bool, hash: String },
}

/// What an imported `auth_user.password` value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// Verifiable: stored as it is.
    Usable(DjangoHash),
    /// Django's "unusable password" (`!…`) or empty: no password was set.
    NoPassword,
    /// An algorithm or a value Gatehouse cannot verify; the name is for the
    /// import report.
    Unverifiable(String),
}

/// Sorts a value from `auth_user.password`.
pub fn classify(stored: &str) -> Imported {
    if stored.is_empty() || stored.starts_with('!') {
        return Imported::NoPassword;
    }
    match DjangoHash::parse(stored) {
        Some(hash) => Imported::Usable(hash),
        None => {
            let algorithm = stored.split('$').next().unwrap_or_default();
            let known = [
                "pbkdf2_sha256",
                "pbkdf2_sha1",
                "argon2",
                "bcrypt_sha256",
                "bcrypt",
            ];
            let name = if known.contains(&algorithm) {
                format!("a damaged {algorithm} hash")
            } else if algorithm.len() <= 20 && !algorithm.is_empty() && stored.contains('$') {
                format!("{algorithm} hashes are not supported")
            } else {
                "an unrecognised hash".to_owned()
            };
            Imported::Unverifiable(name)
        }
    }
}

impl DjangoHash {
    /// A Django hash string, or `None` (Gatehouse's own `$argon2id$…`
    /// strings start with `$` and are not Django's).
    pub fn parse(stored: &str) -> Option<Self> {
        let (algorithm, rest) = stored.split_once('$')?;
        match algorithm {
            "pbkdf2_sha256" | "pbkdf2_sha1" => {
                let mut parts = rest.splitn(3, '$');
                let iterations: u32 = parts.next()?.parse().ok()?;
                let salt = parts.next()?;
                let expected = STANDARD.decode(parts.next()?).ok()?;
                let sha1 = algorithm == "pbkdf2_sha1";
                let length_ok = expected.len() == if sha1 { 20 } else { 32 };
                (length_ok
                    && (1..=MAX_PBKDF2_ITERATIONS).contains(&iterations)
                    && !salt.contains('$'))
                .then(|| Self::Pbkdf2 {
                    sha1,
                    iterations,
                    salt: salt.to_owned(),
                    expected,
                })
            }
            "argon2" => {
                let phc = format!("${}", rest.strip_prefix('$').unwrap_or(rest));
                argon2::PasswordHash::new(&phc).ok()?;
                Some(Self::Argon2(phc))
            }
            "bcrypt_sha256" | "bcrypt" => {
                // A bcrypt string is `$2b$NN$` + 53 characters.
                let looks_right = rest.len() == 60
                    && rest.starts_with("$2")
                    && rest.is_ascii()
                    && rest[4..6]
                        .parse::<u32>()
                        .is_ok_and(|cost| (4..=31).contains(&cost));
                looks_right.then(|| Self::Bcrypt {
                    prehash: algorithm == "bcrypt_sha256",
                    hash: rest.to_owned(),
                })
            }
            _ => None,
        }
    }

    /// Whether `password` is the one this hash was made from. Slow by
    /// design: call it on a hashing thread. Argon2 hashes are checked by the
    /// caller, which owns the argon2 working memory.
    pub fn verify(&self, password: &[u8]) -> Result<bool, String> {
        match self {
            Self::Pbkdf2 {
                sha1,
                iterations,
                salt,
                expected,
            } => {
                let mut output = vec![0u8; expected.len()];
                if *sha1 {
                    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut output,
                    );
                } else {
                    pbkdf2::pbkdf2_hmac::<Sha256>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut output,
                    );
                }
                Ok(output.ct_eq(expected).into())
            }
            Self::Bcrypt { prehash, hash } => {
                let input = if *prehash {
                    hex::encode(Sha256::digest(password)).into_bytes()
                } else {
                    password.to_vec()
                };
                bcrypt::verify(input, hash).map_err(|err| err.to_string())
            }
            Self::Argon2(_) => Err("argon2 hashes are checked with the hasher's memory".into()),
        }
    }
}

/// Whether a stored hash is Gatehouse's own argon2id (else it is re-hashed
/// at the next successful login).
pub fn is_current(stored: &str) -> bool {
    stored.starts_with("$argon2id$")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pbkdf2_sha256(password: &str, salt: &str, iterations: u32) -> String {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
        format!("pbkdf2_sha256${iterations}${salt}${}", STANDARD.encode(out))
    }

    #[test]
    fn a_django_pbkdf2_hash_verifies() {
        // Computed by Python's hashlib.pbkdf2_hmac, which Django's
        // PBKDF2PasswordHasher calls: make_password("lètmein", "seasalt")
        // with 1 000 iterations.
        let stored = "pbkdf2_sha256$1000$seasalt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=";
        let Imported::Usable(hash) = classify(stored) else {
            panic!("a pbkdf2_sha256 hash is usable");
        };
        assert_eq!(hash.verify("lètmein".as_bytes()), Ok(true));
        assert_eq!(hash.verify(b"letmein"), Ok(false));
        assert_eq!(stored, pbkdf2_sha256("lètmein", "seasalt", 1000));
    }

    #[test]
    fn pbkdf2_sha1_and_bcrypt_hashes_verify() {
        // hashlib.pbkdf2_hmac("sha1", b"pw one", b"salt", 10), base64.
        let hash =
            DjangoHash::parse("pbkdf2_sha1$10$salt$WJQYiEwSiAHfdHo4e7hBOzYxvM0=").expect("parses");
        assert_eq!(hash.verify(b"pw one"), Ok(true));
        assert_eq!(hash.verify(b"pw two"), Ok(false));

        let inner = bcrypt::hash(hex::encode(Sha256::digest(b"pw three")), 4).expect("bcrypt");
        let hash = DjangoHash::parse(&format!("bcrypt_sha256${inner}")).expect("parses");
        assert_eq!(hash.verify(b"pw three"), Ok(true));
        assert_eq!(hash.verify(b"pw four"), Ok(false));

        let inner = bcrypt::hash("pw five", 4).expect("bcrypt");
        let hash = DjangoHash::parse(&format!("bcrypt${inner}")).expect("parses");
        assert_eq!(hash.verify(b"pw five"), Ok(true));
    }

    #[test]
    fn what_cannot_be_verified_is_sorted_out() {
        assert_eq!(classify(""), Imported::NoPassword);
        assert_eq!(classify("!Xk3jd93k"), Imported::NoPassword);
        for (stored, why) in [
            ("md5$salt$0123", "md5 hashes are not supported"),
            ("sha1$salt$0123", "sha1 hashes are not supported"),
            (
                "scrypt$abc$16384$8$1$xyz",
                "scrypt hashes are not supported",
            ),
            (
                "pbkdf2_sha256$many$salt$abc=",
                "a damaged pbkdf2_sha256 hash",
            ),
            (
                "pbkdf2_sha256$1000$salt$not base64",
                "a damaged pbkdf2_sha256 hash",
            ),
            (
                "pbkdf2_sha256$999999999$s$AAAA",
                "a damaged pbkdf2_sha256 hash",
            ),
            ("bcrypt_sha256$$2b$12$short", "a damaged bcrypt_sha256 hash"),
            ("argon2$argon2id$garbage", "a damaged argon2 hash"),
            ("plain text password", "an unrecognised hash"),
        ] {
            assert_eq!(
                classify(stored),
                Imported::Unverifiable(why.into()),
                "{stored}"
            );
        }
        let good = pbkdf2_sha256("x", "salt", 3);
        assert!(matches!(classify(&good), Imported::Usable(_)));
        assert!(DjangoHash::parse("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA").is_none());
    }

    #[test]
    fn only_gatehouse_argon2id_counts_as_current() {
        assert!(is_current("$argon2id$v=19$m=19456,t=2,p=1$abc$def"));
        assert!(!is_current(&pbkdf2_sha256("x", "salt", 3)));
        assert!(!is_current("argon2$argon2id$v=19$m=1024,t=1,p=1$abc$def"));
    }
}
