//! A private throwaway PostgreSQL for tests/patients_postgres.rs (to be replaced by the shared
//! harness in tests/support/postgres.rs): one cluster per test binary, started on first use
//! with initdb into a temp folder (`fsync=off`, 127.0.0.1, a free port), password logins over
//! TCP so that a wrong password is refused, and a fresh database per test. As root the cluster
//! runs as the `postgres` user. A watchdog shell stops it and deletes the folder once the test
//! process is gone, however it ended. (It looks for the test process in /proc: as the
//! `postgres` user, `kill -0` on a root process fails as if it were gone. It stops the server
//! with SIGTERM: a background job of `sh -c` ignores SIGQUIT and SIGINT.) Without PostgreSQL the tests print SKIPPED and pass,
//! unless `STEPRULE_REQUIRE_POSTGRES=1`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const USER: &str = "clinic_admin";
pub const PASSWORD: &str = "pw-Tz9!kq-4711";

pub struct Cluster {
    pub port: u16,
}

/// The cluster, or `None` (after printing why) when there is none and none is required.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => Some(cluster),
        Err(why) if std::env::var("STEPRULE_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("STEPRULE_REQUIRE_POSTGRES=1, but no PostgreSQL for the tests: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: no PostgreSQL for this test ({why})");
            None
        }
    }
}

impl Cluster {
    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A new empty database, and a client connected to it.
    pub fn fresh_database(&self, name: &str) -> (String, postgres::Client) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let database = format!("{name}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .expect("create a database");
        let url = self.url(&database);
        let client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        (url, client)
    }
}

fn binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
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

/// Starts a cluster, again on another port when the one picked was taken meanwhile (another
/// test may bind port 0 and be handed the same port).
fn start() -> Result<Cluster, String> {
    let mut failure = String::new();
    for _ in 0..3 {
        match start_once() {
            Ok(cluster) => return Ok(cluster),
            Err(why) => failure = why,
        }
    }
    Err(failure)
}

fn start_once() -> Result<Cluster, String> {
    let bin = binaries().ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("steprule-pgpatients-")
        .tempdir()
        .map_err(|e| format!("a temp folder: {e}"))?
        .keep();
    std::fs::write(dir.join("pw"), PASSWORD).map_err(|e| format!("pwfile: {e}"))?;
    if root {
        let owned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !owned.success() {
            return Err("cannot give the folder to the postgres user".into());
        }
    }
    let initdb = as_cluster_user(root, &bin.join("initdb"))
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
        ])
        .args(["--no-sync", "--username", USER, "--pwfile"])
        .arg(dir.join("pw"))
        .arg("-D")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("a free port: {e}"))?
        .port();
    let script = format!(
        r#"{postgres} -D {dir}/data -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             >{dir}/server.log 2>&1 &
           server=$!
           while [ -d /proc/{parent} ] && kill -0 $server 2>/dev/null; do sleep 0.5; done
           kill -TERM $server 2>/dev/null; wait $server
           rm -rf {dir}"#,
        postgres = bin.join("postgres").display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let shell = Path::new("/bin/sh");
    as_cluster_user(root, shell)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    // Ready when the server says so in its pid file; gone (the watchdog deleted the folder)
    // when it could not start, e.g. because the port was taken.
    let pid_file = dir.join("data/postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if !dir.exists() {
            return Err(format!("postgres did not start on port {port}"));
        }
        let status = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if status
            .lines()
            .nth(7)
            .is_some_and(|line| line.trim() == "ready")
        {
            return Ok(Cluster { port });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the cluster did not start within 60 s".to_owned())
}
