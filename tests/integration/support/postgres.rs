//! Throwaway PostgreSQL for the integration tests.
//!
//! This module owns one private PostgreSQL 15 cluster per test *process* and
//! hands out one brand-new, empty database per *test*:
//!
//! * The cluster is started lazily by the first call to [`fresh_database_url`]
//!   (`initdb` + `pg_ctl start` in a `gatehouse-pg-*` temp directory, on a
//!   free 127.0.0.1 port, with durability switched off for speed). Starting a
//!   server costs about a second, so it is done once and shared by every test
//!   in the binary, whichever thread or tokio runtime the test runs on.
//! * Every call then runs `CREATE DATABASE gh_test_<counter>_<pid>` and
//!   returns a URL to it, so tests never see each other's rows and can run
//!   concurrently without any cleanup between them.
//! * When the test process ends — normally, through `std::process::exit`, a
//!   panic, or a signal — the cluster is stopped and its directory deleted.
//!   The workspace forbids `unsafe`, so this is not an `atexit` hook: a small
//!   `sh` watchdog is spawned with its stdin connected to a pipe that only this
//!   process holds. The kernel closes that pipe when the process dies, however
//!   it dies; the watchdog then reads end-of-file, runs
//!   `pg_ctl -m immediate stop` and removes the directory. (It ignores
//!   SIGINT/SIGHUP/SIGTERM, so a Ctrl-C sent to the whole process group still
//!   leads to clean-up.) Clean-up therefore finishes a fraction of a second
//!   *after* the test process has exited.
//!
//! `initdb` refuses to run as root, so when the tests run as root (as in CI)
//! the PostgreSQL binaries are run as the `postgres` user through
//! `runuser -u postgres --`, and the temp directory is handed to that user.
//!
//! When the binaries are missing, PostgreSQL tests are skipped (with one line
//! on stderr) unless [`postgres_required`] says they must run, in which case
//! they fail loudly.

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database};

/// Where Debian/Ubuntu install the PostgreSQL 15 server binaries; searched after `PATH`.
const FALLBACK_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The single line printed (once per process) when PostgreSQL tests are skipped.
const SKIP_MESSAGE: &str = "PostgreSQL binaries not found; skipping PostgreSQL tests \
                            (set GATEHOUSE_TEST_POSTGRES=require to fail instead)";

/// Server settings: durability off (the data is thrown away anyway) and
/// plenty of connections, because every test opens its own pool.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
];

/// How many times to try `pg_ctl start`, each time on a newly picked port,
/// when the server could not bind its port (another process grabbed it
/// between [`free_port`] releasing it and the server binding it).
const START_ATTEMPTS: usize = 3;

/// The process-wide cluster, started on first use.
static CLUSTER: OnceLock<Result<Cluster, StartError>> = OnceLock::new();

/// Numbers the databases created by this process.
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

/// A running cluster. Lives in a `static` and is never dropped.
struct Cluster {
    port: u16,
    /// `STRATEGY = FILE_COPY` clause for `CREATE DATABASE` (PostgreSQL 15+),
    /// or empty. With fsync off, copying the template's files takes ~40 ms
    /// against ~170 ms for 15's default `WAL_LOG`, which writes it all to WAL.
    create_strategy: &'static str,
    /// Write end of the watchdog's stdin. Nothing is ever written to it: it
    /// exists so that it gets closed when this process exits, which tells the
    /// watchdog to stop the cluster and delete its directory.
    _watchdog_stdin: ChildStdin,
}

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

enum StartError {
    /// `initdb`/`pg_ctl`/`postgres` could not be found; the reason is inside.
    BinariesMissing(String),
    /// The binaries exist but the cluster did not come up; details inside.
    Failed(String),
}

/// The PostgreSQL binaries this module runs.
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

/// A URL (postgres://...) to a brand-new empty database on a throwaway PostgreSQL 15 cluster
/// that this test process starts once (lazily, on first call) in a temp directory and stops when the process exits.
/// Returns None (after printing one line to stderr saying why PostgreSQL tests are skipped) when PostgreSQL
/// binaries are missing AND PostgreSQL is not required. Panics with a clear message when it is required but cannot start.
///
/// A cluster whose binaries exist but which fails to start is always a panic,
/// required or not: that is a broken installation, not an absent one.
pub async fn fresh_database_url() -> Option<String> {
    let cluster = match CLUSTER.get() {
        Some(cluster) => cluster,
        // Starting the cluster is blocking work (initdb, pg_ctl); keep it off
        // the async worker threads. Concurrent callers wait in `get_or_init`.
        None => tokio::task::spawn_blocking(|| CLUSTER.get_or_init(start_cluster))
            .await
            .expect("the task starting the PostgreSQL test cluster panicked"),
    };
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(StartError::BinariesMissing(_)) if !postgres_required() => return None,
        Err(StartError::BinariesMissing(why)) => panic!(
            "PostgreSQL tests are required (CI=true or GATEHOUSE_TEST_POSTGRES=require) \
             but cannot run: {why}"
        ),
        Err(StartError::Failed(details)) => {
            panic!("could not start the throwaway PostgreSQL test cluster:\n{details}")
        }
    };

    let name = format!(
        "gh_test_{}_{}",
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    );
    create_database(cluster, &name).await;
    Some(cluster.url(&name))
}

/// True when PostgreSQL tests must run rather than skip: env CI == "true" or GATEHOUSE_TEST_POSTGRES == "require".
pub fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
        || std::env::var("GATEHOUSE_TEST_POSTGRES").is_ok_and(|value| value == "require")
}

/// Creates database `name` through a short-lived admin connection.
///
/// The connection is opened and closed here rather than kept in a `static`,
/// because a pool is tied to the tokio runtime it was created on, and every
/// `#[tokio::test]` has its own runtime that ends with the test.
async fn create_database(cluster: &Cluster, name: &str) {
    let admin_url = cluster.url("postgres");
    let mut options = ConnectOptions::new(admin_url.clone());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    let admin = Database::connect(options).await.unwrap_or_else(|error| {
        panic!("could not connect to the PostgreSQL test cluster at {admin_url}: {error}")
    });
    admin
        .execute_unprepared(&format!(
            "CREATE DATABASE \"{name}\"{}",
            cluster.create_strategy
        ))
        .await
        .unwrap_or_else(|error| panic!("could not create test database {name}: {error}"));
    admin
        .close()
        .await
        .unwrap_or_else(|error| panic!("could not close the PostgreSQL admin connection: {error}"));
}

/// Finds the binaries, initialises a cluster in a new temp directory and
/// starts it. Runs once per process, inside `CLUSTER.get_or_init`, so it must
/// not panic (a panic would leave the `OnceLock` empty for the next caller to
/// retry); failures are returned instead.
fn start_cluster() -> Result<Cluster, StartError> {
    let Some(binaries) = find_binaries() else {
        if !postgres_required() {
            // Written to the stderr handle rather than with `eprintln!`, which
            // the test harness captures and hides for passing tests.
            let _ = writeln!(io::stderr(), "{SKIP_MESSAGE}");
        }
        return Err(StartError::BinariesMissing(format!(
            "initdb, pg_ctl and postgres were not found together in any PATH directory \
             nor in {FALLBACK_BIN_DIR}"
        )));
    };

    let started = Instant::now();
    let as_root = running_as_root();
    let base = tempfile::Builder::new()
        .prefix("gatehouse-pg-")
        .tempdir()
        .map_err(|error| StartError::Failed(format!("could not create a temp directory: {error}")))?
        // Deleted by the watchdog, not by `TempDir`'s destructor.
        .keep();
    let data = base.join("data");
    let log_file = base.join("server.log");

    // Spawned before anything else can fail, so the directory is removed in
    // every case once this process exits.
    let watchdog_stdin = spawn_watchdog(&base, &data, &binaries, as_root)?;

    if as_root {
        // The directory is created 0700; giving it to `postgres` lets the
        // server create its data directory, socket and log file inside it.
        run(
            Command::new("chown").arg("postgres:postgres").arg(&base),
            "chown",
        )
        .map_err(StartError::Failed)?;
    }

    run(
        pg_command(as_root, &binaries.initdb)
            .current_dir(&base)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres"])
            // Deterministic, UTF-8 regardless of the environment's LANG (an
            // unset LANG would otherwise give SQL_ASCII).
            .args(["-E", "UTF8", "--locale=C"])
            // The cluster is thrown away, so skip the fsync of every file.
            .arg("--no-sync"),
        "initdb",
    )
    .map_err(StartError::Failed)?;
    let major_version: u32 = fs::read_to_string(data.join("PG_VERSION"))
        .ok()
        .and_then(|version| version.trim().parse().ok())
        .unwrap_or(0);
    let create_strategy = if major_version >= 15 {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };

    let mut errors = Vec::new();
    loop {
        let port = free_port().map_err(StartError::Failed)?;
        let mut server_options = format!("-p {port} -k {}", shell_quote(&base));
        for setting in SERVER_SETTINGS {
            server_options.push_str(" -c ");
            server_options.push_str(setting);
        }
        let result = run(
            pg_command(as_root, &binaries.pg_ctl)
                .current_dir(&base)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log_file)
                .args(["-w", "-t", "60", "-o", &server_options, "start"]),
            "pg_ctl start",
        );
        match result {
            Ok(_) => {
                log::info!(
                    "started throwaway PostgreSQL cluster in {} on 127.0.0.1:{port} in {:?}",
                    base.display(),
                    started.elapsed()
                );
                return Ok(Cluster {
                    port,
                    create_strategy,
                    _watchdog_stdin: watchdog_stdin,
                });
            }
            Err(error) => {
                errors.push(error);
                let server_log = fs::read_to_string(&log_file).unwrap_or_else(|error| {
                    format!("(could not read {}: {error})", log_file.display())
                });
                if errors.len() == START_ATTEMPTS || !server_log.contains("could not bind") {
                    return Err(StartError::Failed(format!(
                        "{}\n--- {} ---\n{}",
                        errors.join("\n"),
                        log_file.display(),
                        server_log.trim_end()
                    )));
                }
            }
        }
    }
}

/// Starts the clean-up watchdog for `base` (see the module docs) and returns
/// the write end of its stdin, which must be kept open for the life of the process.
fn spawn_watchdog(
    base: &Path,
    data: &Path,
    binaries: &Binaries,
    as_root: bool,
) -> Result<ChildStdin, StartError> {
    const SCRIPT: &str = r#"
        trap '' INT HUP TERM
        base=$1
        shift
        while read -r line; do :; done
        "$@" >/dev/null 2>&1
        rm -rf "$base"
    "#;
    let stop = pg_command(as_root, &binaries.pg_ctl);
    let mut watchdog = Command::new("sh");
    watchdog
        .args(["-c", SCRIPT, "gatehouse-pg-watchdog"])
        .arg(base)
        .arg(stop.get_program())
        .args(stop.get_args())
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w", "stop"])
        // `/` rather than the test's working directory, which `postgres` may
        // not be allowed to enter.
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = watchdog.spawn().map_err(|error| {
        StartError::Failed(format!("could not spawn the clean-up watchdog: {error}"))
    })?;
    // Dropping the `Child` neither kills nor waits for it; it is reaped by
    // init after this process exits.
    child
        .stdin
        .take()
        .ok_or_else(|| StartError::Failed("the clean-up watchdog has no stdin pipe".to_owned()))
}

/// A command running `program` as the current user, or as `postgres` when root.
fn pg_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
            .into_iter()
            .map(Path::new)
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| Path::new("runuser"));
        let mut command = Command::new(runuser);
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `command` to completion; on failure, describes it with its output.
fn run(command: &mut Command, what: &str) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{what}: could not run {command:?}: {error}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{what} failed ({}): {command:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim_end(),
            String::from_utf8_lossy(&output.stderr).trim_end(),
        ))
    }
}

/// The first directory on `PATH`, then [`FALLBACK_BIN_DIR`], that holds
/// `initdb`, `pg_ctl` and `postgres` (`pg_ctl` starts the `postgres` next to it).
fn find_binaries() -> Option<Binaries> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(FALLBACK_BIN_DIR)])
        .find(|dir| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|name| is_executable(&dir.join(name)))
        })
        .map(|dir| Binaries {
            initdb: dir.join("initdb"),
            pg_ctl: dir.join("pg_ctl"),
        })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// Whether the effective user is root, read from `/proc/self/status`
/// (falling back to `id -u`) since `libc::geteuid` would need `unsafe`.
fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(str::to_owned));
    match effective_uid {
        Some(uid) => uid == "0",
        None => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.trim_ascii() == b"0"),
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("could not pick a free port: {error}"))
}

/// `path` quoted for the shell that `pg_ctl` runs the server through.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
