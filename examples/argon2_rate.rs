//! Baseline for `bench/login.sh`: how many password verifications per second
//! the hasher itself allows on this machine (the app's own PasswordHasher,
//! default settings, its threads kept busy for the given seconds).
//! Prints `hashes_per_second=N`.

use std::time::{Duration, Instant};

use gatehouse::accounts::passwords::PasswordHasher;
use gatehouse::settings::{Secret, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let settings = Settings::load()?;
    let hasher = PasswordHasher::new(&settings.passwords)?;
    let stored = hasher.hash(&Secret::new("correct horse battery")).await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    // More callers than hashing threads, so the threads never wait for work.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (hasher, stored) = (hasher.clone(), stored.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                hasher
                    .verify(&Secret::new("correct horse battery"), Some(&stored))
                    .await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    println!(
        "hashes_per_second={:.1}",
        total as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
