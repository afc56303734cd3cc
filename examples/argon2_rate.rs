//! Baseline for `bench/login.sh`: how many password verifications per second
//! the hasher itself allows on this machine (the app's own PasswordHasher,
//! default settings, its threads kept busy for the given seconds).
//! Prints `hashes_per_second=N cpu_ms_per_hash=M`: the second is the
//! process's CPU time (Linux's /proc/self/stat) over the hashes counted.

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
    let cpu_before = cpu_seconds();
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
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "hashes_per_second={:.1} cpu_ms_per_hash={:.2}",
        total as f64 / started.elapsed().as_secs_f64(),
        cpu * 1000.0 / total.max(1) as f64
    );
    Ok(())
}

/// This process's user and system time so far, in seconds (clock ticks of
/// 1/100 s, as Linux reports them to user space).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, fields 14 and 15 of the line (11 and 12 here).
    (ticks(11) + ticks(12)) / 100.0
}
