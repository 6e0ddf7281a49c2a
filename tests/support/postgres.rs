//! A throwaway PostgreSQL for the tests that need one: one cluster per test binary, started on
//! first use (initdb into a folder under the temp dir, `fsync=off`, listening on 127.0.0.1 at a
//! free port) and removed when the test binary exits, and a fresh database per test. Logins
//! over TCP need the password (scram-sha-256), as on a real server, so tests can show that a
//! wrong one is refused and that a right one never appears in any output.
//!
//! ```ignore
//! let Some(pg) = postgres::server() else { return }; // skipped: printed why
//! let url = pg.fresh_database("ledger_claims");      // postgres://…/ledger_claims_<n>
//! ```
//!
//! Found in this order: `STEPRULE_TEST_POSTGRES_URL` (`postgres://USER:PASSWORD@HOST:PORT`, a
//! server someone started; its user must be allowed to create databases), else `initdb` and
//! `postgres` from `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package). Without either,
//! the tests that need it print a `SKIPPED` line and pass, unless `STEPRULE_REQUIRE_POSTGRES=1`
//! (CI), which makes them fail.
//!
//! As root (CI), the cluster runs as the `postgres` user, which PostgreSQL requires. Nothing is
//! left behind when a test binary ends, even by a panic or a SIGKILL: a watchdog shell beside
//! the server stops it (SIGTERM: a background job of `sh -c` ignores SIGINT and SIGQUIT) and
//! deletes its folder once the test process is gone.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the cluster may take to accept connections after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The superuser of a cluster the harness starts, and its password.
pub const USER: &str = "steprule_test";
pub const PASSWORD: &str = "pw-Tz9kq-4711";

/// A running PostgreSQL the tests may create databases in.
pub struct PgServer {
    user: String,
    password: String,
    /// `127.0.0.1:PORT`.
    host_port: String,
}

/// The server, or `None` (with a line saying why the test is skipped) when there is none and
/// none is required.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server),
        Err(why) if required() => {
            panic!("STEPRULE_REQUIRE_POSTGRES=1, but no PostgreSQL for the tests: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: no PostgreSQL for this test ({why})");
            None
        }
    }
}

fn required() -> bool {
    std::env::var("STEPRULE_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

impl PgServer {
    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    pub fn database_url(&self, database: &str) -> String {
        self.url_with_password(database, &self.password)
    }

    /// The URL of `database` with another password in it (to be refused).
    pub fn url_with_password(&self, database: &str, password: &str) -> String {
        format!(
            "postgres://{}:{password}@{}/{database}",
            self.user, self.host_port
        )
    }

    /// The URL as steprule shows it: without the password.
    pub fn shown_url(&self, database: &str) -> String {
        format!("postgres://{}@{}/{database}", self.user, self.host_port)
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Creates an empty database named `name` plus a number unique to this test binary, and
    /// returns its URL.
    pub fn fresh_database(&self, name: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let database = format!(
            "{name}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
        .to_lowercase();
        let mut admin = postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test PostgreSQL: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .unwrap_or_else(|e| panic!("create the database {database}: {e}"));
        self.database_url(&database)
    }
}

fn start() -> Result<PgServer, String> {
    if let Ok(url) = std::env::var("STEPRULE_TEST_POSTGRES_URL") {
        return given(&url);
    }
    // A free port can be taken by someone else before the server binds it: try again.
    let mut failure = String::new();
    for _ in 0..3 {
        match start_cluster() {
            Ok(server) => return Ok(server),
            Err(why) => failure = why,
        }
    }
    Err(failure)
}

/// `postgres://USER:PASSWORD@HOST:PORT[/DATABASE]`, a server someone else runs.
fn given(url: &str) -> Result<PgServer, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("STEPRULE_TEST_POSTGRES_URL is not a postgres:// URL")?;
    let (login, place) = rest
        .split_once('@')
        .ok_or("STEPRULE_TEST_POSTGRES_URL needs USER:PASSWORD@")?;
    let (user, password) = login
        .split_once(':')
        .ok_or("STEPRULE_TEST_POSTGRES_URL needs a password")?;
    let host_port = place.split('/').next().unwrap_or(place);
    Ok(PgServer {
        user: user.to_owned(),
        password: password.to_owned(),
        host_port: host_port.to_owned(),
    })
}

fn start_cluster() -> Result<PgServer, String> {
    let bin = binaries().ok_or("initdb not found under /usr/lib/postgresql/*/bin")?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("steprule-pg-")
        .tempdir()
        .map_err(|e| format!("a temporary folder: {e}"))?
        // Deleted by the watchdog, after the server has stopped.
        .keep();
    let data = dir.join("data");
    std::fs::write(dir.join("pw"), PASSWORD).map_err(|e| format!("the password file: {e}"))?;
    if root {
        // PostgreSQL refuses to run as root; its own user owns the cluster.
        let owned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !owned.success() {
            return Err("cannot give the cluster's folder to the postgres user".into());
        }
    }
    let initdb = as_cluster_user(root, &bin.join("initdb"))
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
            "--username",
            USER,
            "--pwfile",
        ])
        .arg(dir.join("pw"))
        .arg("-D")
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let port = free_port().ok_or("no free local port")?;
    // The server and a watchdog that stops it (and deletes the folder) when this test process
    // is gone, however it ended. Looked for in /proc: `kill -0` from the `postgres` user on a
    // process of root's fails whether or not it lives.
    let script = format!(
        r#"{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=200 >{dir}/server.log 2>&1 &
           server=$!
           while [ -d /proc/{parent} ] && kill -0 $server 2>/dev/null; do sleep 0.5; done
           kill -TERM $server 2>/dev/null; wait $server
           rm -rf {dir}"#,
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    as_cluster_user(root, Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    let server = PgServer {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
        host_port: format!("127.0.0.1:{port}"),
    };
    let started = Instant::now();
    loop {
        if postgres::Client::connect(&server.url(), postgres::NoTls).is_ok() {
            return Ok(server);
        }
        // The watchdog deleted the folder: the server could not start (the port was taken).
        if !dir.exists() {
            return Err(format!("postgres did not start on port {port}"));
        }
        if started.elapsed() > START_TIMEOUT {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("postgres did not start within a minute:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb`.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // `id -u` rather than libc: the harness stays free of unsafe code.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn as_cluster_user(root: bool, program: &Path) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> Option<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    listener.local_addr().ok().map(|a| a.port())
}
