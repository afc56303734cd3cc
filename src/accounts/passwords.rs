//! Password hashing with argon2id, off the async threads and with bounded
//! concurrency and memory: hashes run on `hash_concurrency` dedicated threads
//! (default one per core), the rest wait in a queue, and each thread reuses
//! one argon2 working buffer for every hash. Unbounded, 64 parallel logins
//! ran 64 hashes at once here (5.3 GB RSS, fewer logins/s); on tokio's
//! blocking pools, freed 19 MiB buffers lingered in many malloc arenas
//! (600 MB RSS); with reused buffers the hashing costs ~19 MiB per thread,
//! and only while logins keep coming: a thread idle for `KEEP_WORKSPACE`
//! gives its buffer back to the system.

use std::alloc::System;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, ParamsBuilder, PasswordHash, Version};
use rand::RngExt;
use subtle::ConstantTimeEq;

use super::django_hashes::DjangoHash;
use crate::secrets::os_rng;
use crate::settings::{PasswordSettings, Secret};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing threads have stopped")]
    Stopped,
}

/// Work for a hashing thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// A hashing thread's argon2 memory, grown to the largest cost it has met.
/// It comes from the system's allocator (glibc's), not the process's
/// (mimalloc, which returns freed memory only as later requests allocate):
/// so an idle thread's buffer leaves at once, even on a quiet site.
struct Workspace {
    blocks: allocator_api2::vec::Vec<Block, System>,
}

impl Default for Workspace {
    fn default() -> Self {
        Self {
            blocks: allocator_api2::vec::Vec::new_in(System),
        }
    }
}

/// Blocks (1 KiB each) reserved at least: more than glibc's largest mmap
/// threshold (32 MiB), so the buffer is always mapped on its own and
/// unmapped when freed. A smaller one, once freed, raises the threshold
/// and the next lands in an arena, resident for good. Only the blocks in
/// use are ever touched, so only they are resident.
const RESERVED_BLOCKS: usize = 33 * 1024;

impl Workspace {
    fn blocks_for(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.blocks.len() < count {
            if self.blocks.capacity() < count {
                self.blocks =
                    allocator_api2::vec::Vec::with_capacity_in(count.max(RESERVED_BLOCKS), System);
            }
            self.blocks.resize(count, Block::default());
        }
        &mut self.blocks[..count]
    }
}

/// How long a hashing thread keeps its argon2 memory after its last hash:
/// a burst of logins reuses it, a quiet site does not hold it.
const KEEP_WORKSPACE: Duration = Duration::from_secs(1);

/// The jobs waiting for a hashing thread. Threads wait on `ready` without
/// holding the lock, so each can time out and free its memory.
#[derive(Default)]
struct Queue {
    jobs: Mutex<Waiting>,
    ready: Condvar,
    /// Threads holding argon2 memory now.
    holding: AtomicUsize,
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    /// Every hasher handle is gone: the threads finish.
    closed: bool,
}

impl Queue {
    fn push(&self, job: Job) -> Result<(), HashError> {
        let mut waiting = self.jobs.lock().map_err(|_| HashError::Stopped)?;
        if waiting.closed {
            return Err(HashError::Stopped);
        }
        waiting.jobs.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, or why there is none: `idle_after` passed without one,
    /// or the queue is closed (or its lock poisoned).
    fn next(&self, idle_after: Option<Duration>) -> Next {
        let deadline = idle_after.map(|after| Instant::now() + after);
        let Ok(mut waiting) = self.jobs.lock() else {
            return Next::Closed;
        };
        loop {
            if let Some(job) = waiting.jobs.pop_front() {
                return Next::Job(job);
            }
            if waiting.closed {
                return Next::Closed;
            }
            let woken = match deadline {
                None => self.ready.wait(waiting).ok(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Next::Idle;
                    }
                    let woken = self.ready.wait_timeout(waiting, left).ok();
                    woken.map(|(waiting, _)| waiting)
                }
            };
            let Some(woken) = woken else {
                return Next::Closed;
            };
            waiting = woken;
        }
    }

    fn close(&self) {
        if let Ok(mut waiting) = self.jobs.lock() {
            waiting.closed = true;
        }
        self.ready.notify_all();
    }
}

/// What a waiting hashing thread gets.
enum Next {
    Job(Job),
    /// No job came for `KEEP_WORKSPACE`.
    Idle,
    Closed,
}

/// Closes the queue when the last hasher handle goes.
struct Jobs(Arc<Queue>);

impl Drop for Jobs {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A hashing thread: runs jobs with its workspace, which it frees after
/// `KEEP_WORKSPACE` without one.
fn hash_jobs(queue: &Queue) {
    yield_to_requests();
    let mut workspace = Workspace::default();
    loop {
        let holding = !workspace.blocks.is_empty();
        match queue.next(holding.then_some(KEEP_WORKSPACE)) {
            Next::Job(job) => {
                job(&mut workspace);
                if !holding && !workspace.blocks.is_empty() {
                    queue.holding.fetch_add(1, SeqCst);
                }
            }
            Next::Idle => {
                workspace = Workspace::default();
                queue.holding.fetch_sub(1, SeqCst);
            }
            Next::Closed => return,
        }
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Arc<Jobs>,
    params: Params,
    /// Verified against when an account is unknown or has no password, so
    /// that every login attempt costs the same.
    dummy_hash: Arc<str>,
}

/// The niceness of hashing threads. A hash takes tens of milliseconds of
/// CPU; at the default priority, page views arriving during a burst of
/// logins wait behind whole slices of it. Niced, they run first, and logins
/// still get every cycle the pages leave.
#[cfg(target_os = "linux")]
const HASH_NICENESS: i32 = 10;

/// Lowers the calling (hashing) thread's priority; on Linux niceness is per
/// thread. Elsewhere hashing keeps the default priority.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::process::nice(HASH_NICENESS) {
        log::warn!("Could not lower the priority of a password hashing thread: {err}");
    }
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<Self, HashError> {
        let params = ParamsBuilder::new()
            .m_cost(settings.argon2_memory_kib)
            .t_cost(settings.argon2_iterations)
            .p_cost(settings.argon2_parallelism)
            .build()
            .map_err(|err| HashError::Params(err.to_string()))?;
        let threads = match settings.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let queue = Arc::new(Queue::default());
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || hash_jobs(&queue))
                .map_err(|err| HashError::Hash(format!("cannot start a hashing thread: {err}")))?;
        }
        let dummy_hash = hash_with(
            &params,
            b"gatehouse dummy password",
            &mut Workspace::default(),
        )?;
        Ok(Self {
            jobs: Arc::new(Jobs(queue)),
            params,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password (PHC string with its own salt and parameters).
    pub async fn hash(&self, password: &Secret) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move |workspace| hash_with(&params, password.expose().as_bytes(), workspace))
            .await?
    }

    /// True when `password` matches `stored`. With no stored hash, a dummy
    /// hash is checked instead (and false returned) so timing reveals nothing.
    pub async fn verify(&self, password: &Secret, stored: Option<&str>) -> bool {
        let password = password.clone();
        let real = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let verified = self
            .run(move |workspace| {
                check_stored(password.expose().as_bytes(), &hash, workspace).unwrap_or_else(|err| {
                    log::error!("A stored password hash could not be checked: {err}");
                    false
                })
            })
            .await
            .unwrap_or(false);
        real && verified
    }

    /// Queues `work` for a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.jobs
            .0
            .push(Box::new(move |workspace: &mut Workspace| {
                let _ = reply.send(work(workspace));
            }))?;
        result.await.map_err(|_| HashError::Stopped)
    }
}

fn hash_with(
    params: &Params,
    password: &[u8],
    workspace: &mut Workspace,
) -> Result<String, HashError> {
    let failed = |err: &dyn std::fmt::Display| HashError::Hash(err.to_string());
    let salt: [u8; 16] = os_rng().random();
    let mut output = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, workspace.blocks_for(params))
        .map_err(|err| failed(&err))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|err| failed(&err))?,
        salt: Some(Salt::new(&salt).map_err(|err| failed(&err))?),
        hash: Some(Output::new(&output).map_err(|err| failed(&err))?),
    };
    Ok(phc.to_string())
}

/// Checks a stored hash: Gatehouse's own PHC strings, or a hash imported
/// from Django (see `django_hashes`).
fn check_stored(password: &[u8], stored: &str, workspace: &mut Workspace) -> Result<bool, String> {
    match DjangoHash::parse(stored) {
        None => verify_with(password, stored, workspace),
        // Django's argon2 costs (100 MiB by default) are not kept in the
        // thread's memory: a one-off workspace, freed once checked.
        Some(DjangoHash::Argon2(phc)) => verify_with(password, &phc, &mut Workspace::default()),
        Some(other) => other.verify(password),
    }
}

/// Recomputes a stored PHC hash with its own parameters and compares in
/// constant time.
fn verify_with(password: &[u8], stored: &str, workspace: &mut Workspace) -> Result<bool, String> {
    let phc = PasswordHash::new(stored).map_err(|err| err.to_string())?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|err| err.to_string())?;
    let version = match phc.version {
        Some(version) => Version::try_from(version).map_err(|err| err.to_string())?,
        None => Version::default(),
    };
    let params = Params::try_from(&phc).map_err(|err| err.to_string())?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err("the hash has no salt or output".into());
    };
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut output,
            workspace.blocks_for(&params),
        )
        .map_err(|err| err.to_string())?;
    Ok(output.ct_eq(expected.as_ref()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_hashing_threads_free_their_memory() {
        let hasher = PasswordHasher::new(&cheap()).expect("a hasher");
        let holding = || hasher.jobs.0.holding.load(SeqCst);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let password = Secret::new("correct horse battery".to_owned());
        runtime.block_on(hasher.hash(&password)).expect("hashed");
        // Counted just after the job, which answered first.
        let answered = Instant::now();
        while holding() == 0 && answered.elapsed() < KEEP_WORKSPACE / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(holding(), 1);
        std::thread::sleep(KEEP_WORKSPACE + Duration::from_millis(300));
        assert_eq!(holding(), 0);
        // Mapped on its own, so freeing it gives it back to the system.
        let mut workspace = Workspace::default();
        let params = Params::new(1024, 1, 1, None).expect("params");
        assert_eq!(workspace.blocks_for(&params).len(), 1024);
        assert!(workspace.blocks.capacity() >= RESERVED_BLOCKS);
    }

    fn cheap() -> PasswordSettings {
        PasswordSettings {
            min_length: 10,
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_concurrency: 2,
        }
    }

    /// The niceness of each of this process's threads with `name`.
    #[cfg(target_os = "linux")]
    fn niceness_of_threads(name: &str) -> Vec<i64> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("tasks");
        tasks
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim() == name)
            })
            .map(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).expect("stat");
                // Fields after the command's closing parenthesis; nice is the 19th field.
                let after = &stat[stat.rfind(')').expect("comm") + 2..];
                after
                    .split(' ')
                    .nth(16)
                    .expect("nice")
                    .parse()
                    .expect("a number")
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_yield_to_request_threads() {
        let _hasher = PasswordHasher::new(&cheap()).expect("hasher");
        // Each thread lowers its priority as it starts: wait for both.
        let deadline = Instant::now() + Duration::from_secs(5);
        let niced = |name| {
            let niceness = niceness_of_threads(name);
            !niceness.is_empty() && niceness.iter().all(|&nice| nice >= HASH_NICENESS.into())
        };
        while !(niced("password-hash-0") && niced("password-hash-1")) {
            assert!(
                Instant::now() < deadline,
                "hashing threads at niceness {:?} and {:?}",
                niceness_of_threads("password-hash-0"),
                niceness_of_threads("password-hash-1")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
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
        // Hashes made by the argon2 crate's own encoder verify too.
        use argon2::PasswordHasher as _;
        let theirs = Argon2::default()
            .hash_password(b"theirs")
            .expect("hash")
            .to_string();
        assert!(hasher.verify(&Secret::new("theirs"), Some(&theirs)).await);
        assert!(!hasher.verify(&Secret::new("mine"), Some(&theirs)).await);
        // Django's argon2 hasher writes the same PHC string after "argon2".
        let django = format!("argon2{theirs}");
        assert!(hasher.verify(&Secret::new("theirs"), Some(&django)).await);
        assert!(!hasher.verify(&Secret::new("mine"), Some(&django)).await);
        let pbkdf2 = "pbkdf2_sha256$1000$seasalt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=";
        assert!(hasher.verify(&Secret::new("lètmein"), Some(pbkdf2)).await);
        assert!(!hasher.verify(&Secret::new("letmein"), Some(pbkdf2)).await);
        assert!(!hasher.verify(&Secret::new("x"), Some("md5$salt$abc")).await);
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_allowed() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let hasher = hasher.clone();
            let (running, peak) = (running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                hasher
                    .run(move |_| {
                        let now = running.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(now, SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("ran");
        }
        assert_eq!(peak.load(SeqCst), 2);
    }
}
