//! `steprule serve` as a child process on 127.0.0.1:0: started in a scratch folder, its port read
//! from stderr, spoken to over HTTP, stopped with SIGTERM, its ledger (the folder's SQLite file,
//! or a PostgreSQL database) read back through steprule's ledger traits.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steprule::ledger::postgres::{PgLedger, DEFAULT_LEASE};
use steprule::ledger::{EventFilter, EventRecord, Ledger, ServeLedger};

use crate::common::fixtures;

/// How the server is started.
#[derive(Default)]
pub struct Options {
    /// `LINE_CHANNEL_ACCESS_TOKEN` and `--line-api-base` (the fake reply endpoint's).
    pub line: Option<(String, String)>,
    /// Instead of tests/fixtures/serve/patients.csv.
    pub patients: Option<PathBuf>,
    /// Instead of tests/fixtures/serve/clinic.step.
    pub rules: Option<PathBuf>,
    pub args: Vec<String>,
    /// A PostgreSQL ledger (`--ledger postgres://…`) instead of the folder's `ledger.db`.
    pub ledger_url: Option<String>,
}

/// Runs `test` with a server on each ledger: the SQLite file, then a fresh PostgreSQL database
/// (unless there is no PostgreSQL and none is required: then said, and skipped).
pub fn each_ledger(test: impl Fn(Options)) {
    test(Options::default());
    if let Some(server) = crate::pg::server() {
        test(Options {
            ledger_url: Some(server.fresh_database("serve")),
            ..Options::default()
        });
    }
}

/// An answer: status, `Location`, body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

pub struct Serve {
    child: Option<Child>,
    pub addr: String,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
    /// The PostgreSQL ledger's URL, and the clinic whose rows `serve` writes there.
    ledger_url: Option<(String, String)>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// What a stopped server left.
pub struct Stopped {
    pub code: i32,
    pub stderr: String,
}

impl Serve {
    pub fn start(options: Options) -> Serve {
        Serve::start_in(tempfile::tempdir().unwrap(), options)
    }

    /// Starts in `dir` (its ledger is `dir/ledger.db`).
    pub fn start_in(dir: tempfile::TempDir, options: Options) -> Serve {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        let rules = options
            .rules
            .unwrap_or_else(|| fixtures().join("serve/clinic.step"));
        let ledger_url = options.ledger_url.map(|url| (url, clinic_of(&rules)));
        command
            .arg("serve")
            .arg(&rules)
            .arg("--patients")
            .arg(
                options
                    .patients
                    .unwrap_or_else(|| fixtures().join("serve/patients.csv")),
            )
            .arg("--ledger")
            .arg(match &ledger_url {
                Some((url, _)) => PathBuf::from(url),
                None => dir.path().join("ledger.db"),
            })
            .arg("--outbox")
            .arg(dir.path().join("outbox.jsonl"))
            .args(["--listen", "127.0.0.1:0"])
            .args(&options.args)
            .env("NO_COLOR", "1")
            .env("LINE_CHANNEL_SECRET", crate::SECRET)
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((token, base)) = &options.line {
            command
                .env("LINE_CHANNEL_ACCESS_TOKEN", token)
                .args(["--line-api-base", base]);
        }
        let mut child = command.spawn().expect("steprule serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let kept = Arc::clone(&stderr);
        // Reads stderr to the end, so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = found.send(addr);
                }
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let addr = match address.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("serve did not start:\n{}", stderr.lock().unwrap());
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Serve {
            child: Some(child),
            addr,
            stderr,
            dir,
            ledger_url,
            runtime,
            http,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn answer(&self, request: reqwest::RequestBuilder) -> Answer {
        self.runtime.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.text().await.unwrap_or_default();
            Answer {
                status,
                location,
                body,
            }
        })
    }

    /// POSTs `body` to the webhook, signed unless `signature` says otherwise.
    pub fn post_signed(&self, body: &[u8]) -> Answer {
        self.post(
            body,
            Some(&crate::events::sign(body)),
            "application/json; charset=utf-8",
        )
    }

    pub fn post(&self, body: &[u8], signature: Option<&str>, content_type: &str) -> Answer {
        let mut request = self
            .http
            .post(format!("http://{}/line/webhook", self.addr))
            .header("content-type", content_type)
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-line-signature", signature);
        }
        self.answer(request)
    }

    pub fn get(&self, path: &str, agent: Option<&str>) -> Answer {
        let mut request = self.http.get(format!("http://{}{path}", self.addr));
        if let Some(agent) = agent {
            request = request.header("user-agent", agent);
        }
        self.answer(request)
    }

    pub fn head(&self, path: &str, agent: &str) -> Answer {
        self.answer(
            self.http
                .head(format!("http://{}{path}", self.addr))
                .header("user-agent", agent),
        )
    }

    /// The ledger as `serve` left it (read while it runs: WAL lets readers in; on PostgreSQL,
    /// the clinic's rows).
    pub fn ledger(&self) -> Box<dyn ServeLedger> {
        match &self.ledger_url {
            Some((url, clinic)) => Box::new(PgLedger::open(url, clinic, DEFAULT_LEASE).unwrap()),
            None => Box::new(Ledger::open(&self.ledger_path()).unwrap()),
        }
    }

    /// The folder's SQLite ledger, for what only it holds (LINE's statistics).
    pub fn sqlite_ledger(&self) -> Ledger {
        Ledger::open(&self.ledger_path()).unwrap()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        let mut events = Vec::new();
        self.ledger()
            .events(&EventFilter::default(), &mut |e| {
                events.push(e);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        events
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to end.
    pub fn stop(mut self) -> Stopped {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop on SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reading thread gets the last lines once the pipe closes.
        std::thread::sleep(Duration::from_millis(100));
        Stopped {
            code,
            stderr: self.stderr(),
        }
    }
}

/// The clinic a PostgreSQL ledger's rows of `rules` belong to: its `clinic` name, else the
/// file's name without `.step` (as `serve` and `run` work it out).
fn clinic_of(rules: &Path) -> String {
    let text = std::fs::read_to_string(rules).unwrap();
    let named = text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("clinic ")?;
        Some(rest.trim().trim_matches('"').to_owned())
    });
    named.unwrap_or_else(|| rules.file_stem().unwrap().to_string_lossy().into_owned())
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
