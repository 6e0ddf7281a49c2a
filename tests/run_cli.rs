//! `steprule run` against a fake LINE API (tests/support/fake_line.rs) on 127.0.0.1: every due
//! send reaches LINE exactly once, whatever fails on the way, and the ledger says so.
//!
//! The rules are tests/fixtures/run/clinic.step at 2026-11-25 10:00 (Asia/Tokyo). In
//! tests/fixtures/run/patients.csv five sends are due, worked out by hand:
//! R1 booked 09:30 → booking_confirm; R2 booked yesterday 12:00 → booking_confirm (its 24 h end
//! at 12:00); R3's booking_confirm has expired, but its visit_reminder (11-24 18:00, for an
//! appointment today at 11:00) is still sendable; R4 first visit yesterday 11:00 → thanks at
//! 10:00; R8 booked at 06:45, inside quiet hours → booking_confirm at 09:00. R5 opted out, R6
//! has no LINE id, R7's booking_confirm expired and its reminder was stopped by the
//! cancellation. The large tests generate N booked patients whose booking_confirm is due.

mod common;
#[path = "support/fake_line.rs"]
mod fake_line;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixtures;
use fake_line::{FakeLine, Fault, Faults, TOKEN};

const NOW: &str = "2026-11-25 10:00";

/// The (patient, step) pairs due at NOW in patients.csv.
const DUE_IN_FIXTURE: [(&str, &str); 5] = [
    ("R1", "booking_confirm"),
    ("R2", "booking_confirm"),
    ("R3", "visit_reminder"),
    ("R4", "thanks"),
    ("R8", "booking_confirm"),
];

// ---------------------------------------------------------------------------------------------
// Running the binary

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The numbers of the closing summary line (`due 5, sent 5, …, skipped rows 0`).
    fn summary(&self) -> HashMap<String, u64> {
        let line = self
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("due "))
            .unwrap_or_else(|| panic!("no summary line in stderr:\n{}", self.stderr));
        line.split(", ")
            .map(|part| {
                let (name, number) = part.rsplit_once(' ').expect("`name N`");
                let number = number.parse().unwrap_or_else(|_| panic!("{line}"));
                (name.to_owned(), number)
            })
            .collect()
    }

    fn count(&self, name: &str) -> u64 {
        *self
            .summary()
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` in the summary:\n{}", self.stderr))
    }
}

/// A scratch folder holding the ledger, the outbox and generated patients.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ledger(&self) -> PathBuf {
        self.path().join("ledger.db")
    }

    fn outbox(&self) -> PathBuf {
        self.path().join("outbox.jsonl")
    }

    /// `steprule run` on the run fixtures' rules with this workspace's ledger and outbox.
    fn command(&self, patients: &Path, line: Option<(&str, &FakeLine)>, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        command
            .arg("run")
            .arg(fixtures().join("run/clinic.step"))
            .arg("--patients")
            .arg(patients)
            .args(["--now", NOW])
            .arg("--ledger")
            .arg(self.ledger())
            .arg("--outbox")
            .arg(self.outbox())
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
        if let Some((token, fake)) = line {
            command
                .env("LINE_CHANNEL_ACCESS_TOKEN", token)
                .arg("--line-api-base")
                .arg(fake.base_url());
        }
        command.args(extra);
        command
    }

    fn run(&self, patients: &Path, line: Option<(&str, &FakeLine)>, extra: &[&str]) -> Run {
        output(self.command(patients, line, extra))
    }

    /// Runs against `fake` with the right token until no row is left pending (at most three
    /// runs, each of which must end cleanly).
    fn run_until_settled(&self, patients: &Path, fake: &FakeLine, extra: &[&str]) -> Vec<Run> {
        let mut runs = Vec::new();
        for _ in 0..3 {
            let run = self.run(patients, Some((TOKEN, fake)), extra);
            assert_eq!(run.code, 0, "exit code\n{}", run.stderr);
            runs.push(run);
            if ledger(&self.ledger()).status_count("pending") == 0 {
                break;
            }
        }
        runs
    }

    /// Writes `n` booked patients whose booking_confirm is due at NOW; see `patient` and
    /// `user_id` for their ids.
    fn booked_patients(&self, n: usize) -> PathBuf {
        let path = self.path().join(format!("booked_{n}.csv"));
        let mut csv = String::from(
            "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at,cancelled_at\n",
        );
        for i in 0..n {
            csv.push_str(&format!(
                "{},{},テスト {i},booked,2026-11-25 09:30,1980-01-01,,false,,\n",
                patient(i),
                user_id(i)
            ));
        }
        std::fs::write(&path, csv).expect("write the patients");
        path
    }
}

fn output(mut command: Command) -> Run {
    let output = command.output().expect("the steprule binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the steprule binary starts")
}

fn finish(child: Child) -> Run {
    let output = child.wait_with_output().expect("wait for steprule");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn patient(i: usize) -> String {
    format!("P{i:05}")
}

fn user_id(i: usize) -> String {
    format!("U{i:032x}")
}

fn fixture_patients() -> PathBuf {
    fixtures().join("run/patients.csv")
}

/// The LINE user id of a patient in patients.csv (`R3` → `U…03`).
fn fixture_user_id(patient: &str) -> String {
    format!("U{:0>32}", &patient[1..])
}

// ---------------------------------------------------------------------------------------------
// Reading the ledger as a person with sqlite3 would

#[derive(Debug, Clone)]
struct Row {
    patient: String,
    step: String,
    occurrence: String,
    status: String,
    retry_key: String,
    attempts: i64,
    line_request_id: Option<String>,
    last_error: Option<String>,
}

struct Ledger {
    rows: Vec<Row>,
}

fn ledger(path: &Path) -> Ledger {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open the ledger {}: {e}", path.display()));
    let mut statement = conn
        .prepare(
            "SELECT patient, step, occurrence, status, retry_key, attempts, line_request_id,
                    last_error
             FROM sends",
        )
        .expect("the sends table");
    let rows = statement
        .query_map([], |row| {
            Ok(Row {
                patient: row.get(0)?,
                step: row.get(1)?,
                occurrence: row.get(2)?,
                status: row.get(3)?,
                retry_key: row.get(4)?,
                attempts: row.get(5)?,
                line_request_id: row.get(6)?,
                last_error: row.get(7)?,
            })
        })
        .expect("query the sends")
        .collect::<Result<Vec<_>, _>>()
        .expect("read the sends");
    Ledger { rows }
}

impl Ledger {
    fn status_count(&self, status: &str) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }

    fn statuses(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for row in &self.rows {
            *counts.entry(row.status.clone()).or_default() += 1;
        }
        counts
    }

    fn row(&self, patient: &str, step: &str) -> &Row {
        let rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.patient == patient && r.step == step)
            .collect();
        assert_eq!(rows.len(), 1, "one row for ({patient}, {step}): {rows:?}");
        rows[0]
    }

    fn by_key(&self) -> HashMap<&str, &Row> {
        self.rows
            .iter()
            .map(|r| (r.retry_key.as_str(), r))
            .collect()
    }
}

/// The heart of the contract, for `n` generated patients each with one due booking_confirm:
/// LINE accepted each (patient, step) exactly once, the ledger has `n` distinct rows all `sent`,
/// and each row names the retry key LINE accepted and the id of the request that delivered it.
fn assert_delivered_exactly_once(fake: &FakeLine, ledger_path: &Path, n: usize) {
    assert_eq!(
        fake.protocol_errors(),
        Vec::<String>::new(),
        "requests LINE would refuse"
    );
    let counts = fake.delivery_counts();
    let twice: Vec<_> = counts.iter().filter(|(_, &c)| c > 1).take(5).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let missing: Vec<String> = (0..n)
        .map(user_id)
        .filter(|to| !counts.contains_key(&(to.clone(), "booking_confirm".to_owned())))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "never delivered (first few): {missing:?}"
    );
    assert_eq!(fake.accepted(), n, "messages LINE accepted");

    let ledger = ledger(ledger_path);
    assert_eq!(ledger.rows.len(), n, "ledger rows: {:?}", ledger.statuses());
    assert_eq!(
        ledger.status_count("sent"),
        n,
        "sent rows: {:?}",
        ledger.statuses()
    );
    let keys: HashSet<(&str, &str, &str)> = ledger
        .rows
        .iter()
        .map(|r| (r.patient.as_str(), r.step.as_str(), r.occurrence.as_str()))
        .collect();
    assert_eq!(keys.len(), n, "(patient, step, occurrence) are distinct");
    for row in &ledger.rows {
        let accepted = fake.accepted_request_id(&row.retry_key);
        assert!(
            accepted.is_some(),
            "LINE never accepted the retry key of {row:?}"
        );
        assert_eq!(
            row.line_request_id, accepted,
            "the ledger names the request that delivered {row:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The fake itself

/// What a push got back: the status, `x-line-request-id`, `x-line-accepted-request-id` and
/// `retry-after`.
type Answer = (u16, Option<String>, Option<String>, Option<String>);

/// Pushes one text message to `user_id(1)` with reqwest, as steprule does.
fn push(fake: &FakeLine, token: &str, key: &str) -> Result<Answer, reqwest::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = serde_json::json!({"to": user_id(1), "messages": [{"type": "text", "text": "hi"}]});
    let request = reqwest::Client::new()
        .post(format!("{}/v2/bot/message/push", fake.base_url()))
        .bearer_auth(token)
        .header("X-Line-Retry-Key", key)
        .json(&body)
        .send();
    let response = runtime.block_on(request)?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Ok((
        response.status().as_u16(),
        header("x-line-request-id"),
        header("x-line-accepted-request-id"),
        header("retry-after"),
    ))
}

#[test]
fn fake_line_enforces_retry_keys() {
    let key = "123e4567-e89b-42d3-a456-426614174000";
    let fake = FakeLine::start(Faults::none());
    let (status, first_id, _, _) = push(&fake, TOKEN, key).unwrap();
    assert_eq!(status, 200);
    let (status, second_id, accepted_id, _) = push(&fake, TOKEN, key).unwrap();
    assert_eq!(status, 409);
    assert_eq!(accepted_id, first_id, "409 names the accepted request");
    assert_ne!(second_id, first_id, "every request has its own id");
    assert_eq!(fake.accepted(), 1, "a repeated key is delivered once");
    assert_eq!(fake.conflicts(), 1);
    assert_eq!(push(&fake, TOKEN, "not-a-uuid").unwrap().0, 400);
    assert_eq!(push(&fake, "wrong", key).unwrap().0, 401);
    assert_eq!(fake.unauthorized(), 1);
    assert_eq!(fake.accepted_request_id(key), first_id);
    assert_eq!(fake.deliveries_to(&user_id(1), ""), 1);

    // Every attempt fails after accepting: the first is delivered, then only 500s.
    let fake = FakeLine::start(Faults {
        error_after: 1.0,
        ..Faults::none()
    });
    assert_eq!(push(&fake, TOKEN, key).unwrap().0, 500);
    assert_eq!(push(&fake, TOKEN, key).unwrap().0, 500);
    assert_eq!((fake.accepted(), fake.attempts_for_key(key)), (1, 2));
}

#[test]
fn fake_line_drops_connections_and_throttles() {
    let fake = FakeLine::start(Faults {
        drop_before: 1.0,
        ..Faults::none()
    });
    let error = push(&fake, TOKEN, "00000000-0000-4000-8000-000000000001")
        .expect_err("the connection is dropped");
    assert!(error.status().is_none(), "no response: {error}");
    assert_eq!(fake.accepted(), 0);
    assert_eq!(fake.faults()[&Fault::DropBefore], 1);

    let fake = FakeLine::start(Faults {
        too_many_requests: 1.0,
        ..Faults::none()
    });
    let (status, _, _, retry_after) =
        push(&fake, TOKEN, "00000000-0000-4000-8000-000000000002").unwrap();
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
    assert_eq!(fake.accepted(), 0);
}

// ---------------------------------------------------------------------------------------------
// Delivery

#[test]
fn due_sends_are_delivered_once_with_their_rendered_messages() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("due"), run.count("sent"), run.count("failed")),
        (5, 5, 0),
        "{}",
        run.stderr
    );
    assert_eq!(fake.protocol_errors(), Vec::<String>::new());
    let mut got: Vec<(String, String)> = fake
        .deliveries()
        .iter()
        .map(|d| (d.to.clone(), d.unit.clone()))
        .collect();
    got.sort();
    let want: Vec<(String, String)> = DUE_IN_FIXTURE
        .iter()
        .map(|(p, _)| (fixture_user_id(p), String::new()))
        .collect();
    assert_eq!(
        got, want,
        "one push per due send, no aggregation units by default"
    );

    let messages = |patient: &str| {
        fake.deliveries()
            .into_iter()
            .find(|d| d.to == fixture_user_id(patient))
            .unwrap()
            .messages
    };
    let r1 = messages("R1");
    assert_eq!(r1[0]["type"], "text");
    assert_eq!(
        r1[0]["text"],
        "テスト内科からのお知らせです。\nテスト 一郎 様、ご予約ありがとうございます。"
    );
    // The reminder has buttons: text, then a Flex card with the template's alt text.
    let r3 = messages("R3");
    assert_eq!(r3[0]["type"], "text");
    assert!(
        r3[0]["text"].as_str().unwrap().contains("11月25日 11:00"),
        "{r3}"
    );
    assert_eq!(
        (r3[1]["type"].as_str(), r3[1]["altText"].as_str()),
        (Some("flex"), Some("ご予約について"))
    );
    // thanks has an image and no buttons: text, then an image message.
    let r4 = messages("R4");
    assert_eq!(r4[1]["type"], "image", "{r4}");

    let ledger = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = ledger.row(patient, step);
        assert_eq!(row.status, "sent", "{row:?}");
        assert_eq!(row.attempts, 1, "{row:?}");
        assert_eq!(
            row.line_request_id,
            fake.accepted_request_id(&row.retry_key)
        );
    }
    assert!(
        !ledger.rows.iter().any(|r| r.status == "sent"
            && !DUE_IN_FIXTURE.contains(&(r.patient.as_str(), r.step.as_str()))),
        "nothing else was sent: {:?}",
        ledger.rows
    );
}

#[test]
fn rerun_with_nothing_new_sends_nothing() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let first = ws.run(
        &fixture_patients(),
        Some((TOKEN, &fake)),
        &["--custom-aggregation"],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(fake.accepted(), 5);
    let requests = fake.request_count();
    let rows_before = ledger(&ws.ledger()).rows;

    let again = ws.run(
        &fixture_patients(),
        Some((TOKEN, &fake)),
        &["--custom-aggregation"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(fake.request_count(), requests, "no request on the rerun");
    assert_eq!(again.count("sent"), 0, "{}", again.stderr);
    assert_eq!(again.count("already sent"), 5, "{}", again.stderr);
    let rows_after = ledger(&ws.ledger()).rows;
    assert_eq!(rows_after.len(), rows_before.len());
    for (patient, step) in DUE_IN_FIXTURE {
        assert_eq!(fake.deliveries_to(&fixture_user_id(patient), step), 1);
    }
}

#[test]
fn ten_thousand_sends_with_faults_are_delivered_exactly_once() {
    const N: usize = 10_000;
    let fake = FakeLine::start(Faults {
        seed: 20261125,
        error_before: 0.025,
        error_after: 0.025,
        too_many_requests: 0.005,
        drop_before: 0.005,
        drop_after: 0.005,
        ..Faults::none()
    });
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let runs = ws.run_until_settled(
        &patients,
        &fake,
        &["--rate", "5000", "--custom-aggregation"],
    );
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);

    let sent: u64 = runs.iter().map(|r| r.count("sent")).sum();
    assert_eq!(
        sent,
        N as u64,
        "summaries: {:?}",
        runs.iter().map(|r| r.summary()).collect::<Vec<_>>()
    );
    assert_eq!(runs[0].count("due"), N as u64);
    assert_eq!(runs[0].count("failed"), 0);
    let faults = fake.faults();
    assert!(
        faults.get(&Fault::ErrorAfter).copied().unwrap_or(0) > 100,
        "{faults:?}"
    );
    assert!(
        fake.keys_answered_conflict() > 100,
        "sends accepted before a 500 were retried and met 409 ({} keys)",
        fake.keys_answered_conflict()
    );

    assert!(
        faults.get(&Fault::DropBefore).copied().unwrap_or(0)
            + faults.get(&Fault::DropAfter).copied().unwrap_or(0)
            > 20,
        "connections were dropped: {faults:?}"
    );

    // Once LINE's answer (200 or 409) reached steprule, the key was not sent again.
    let requests = fake.requests();
    let mut acknowledged = HashSet::new();
    let mut in_order: Vec<&fake_line::Request> = requests.iter().collect();
    in_order.sort_by_key(|r| r.at);
    for r in in_order {
        let key = r.retry_key.as_deref().expect("a retry key");
        assert!(
            !acknowledged.contains(key),
            "{key} sent again after LINE answered it"
        );
        if r.status == 200 || r.status == 409 {
            acknowledged.insert(key);
        }
    }

    // A 429 said `Retry-After: 1`: the same key did not come back sooner.
    let mut by_key: HashMap<&str, Vec<&fake_line::Request>> = HashMap::new();
    for r in &requests {
        if let Some(key) = &r.retry_key {
            by_key.entry(key).or_default().push(r);
        }
    }
    let mut checked = 0;
    for attempts in by_key.values_mut() {
        attempts.sort_by_key(|r| r.at);
        for pair in attempts.windows(2) {
            if pair[0].status == 429 {
                checked += 1;
                let waited = pair[1].at.duration_since(pair[0].at);
                assert!(
                    waited >= Duration::from_millis(950),
                    "retried {waited:?} after a 429 with Retry-After: 1"
                );
            }
        }
    }
    assert!(checked > 10, "429s were retried ({checked})");
}

#[test]
fn killed_mid_run_then_rerun_delivers_each_exactly_once() {
    const N: usize = 10_000;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(2)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--rate", "5000", "--custom-aggregation"];
    let mut child = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    assert!(
        fake.wait_for_accepted(2_000, Duration::from_secs(60)),
        "2,000 deliveries within a minute (got {})",
        fake.accepted()
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the killed run");
    let at_kill = fake.accepted();
    assert!(
        at_kill < N,
        "the run was killed before it finished ({at_kill} delivered)"
    );

    // What the killed run left: every message LINE accepted has its row, with the same retry
    // key, because the row is written before the request leaves.
    let left = ledger(&ws.ledger());
    let rows = left.by_key();
    for delivery in fake.deliveries() {
        let key = delivery.retry_key.as_deref().expect("a retry key");
        let row = rows
            .get(key)
            .unwrap_or_else(|| panic!("no ledger row for accepted key {key} ({})", delivery.to));
        assert!(row.status == "sent" || row.status == "pending", "{row:?}");
    }

    let run = ws.run(&patients, Some((TOKEN, &fake)), &args);
    assert_eq!(
        run.code, 0,
        "the next run is not blocked by the dead one\n{}",
        run.stderr
    );
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
    eprintln!(
        "killed after {at_kill} deliveries; the rerun met {} 409s",
        fake.conflicts()
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    const N: usize = 300;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(300)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--concurrency", "8", "--custom-aggregation"];
    let child = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    assert!(fake.wait_for_accepted(16, Duration::from_secs(30)));
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let run = finish(child);
    assert!(
        run.code >= 0,
        "exited by itself, not killed by the signal\n{}",
        run.stderr
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "stopped promptly ({:?})",
        signalled.elapsed()
    );
    let accepted = fake.accepted();
    assert!(
        accepted < N,
        "stopped before the end ({accepted} delivered)"
    );
    eprintln!(
        "SIGTERM after {accepted} deliveries: exit {}, {:?} later; {}",
        run.code,
        signalled.elapsed(),
        run.stderr.lines().last().unwrap_or("")
    );
    // Requests in flight at the signal were answered and recorded, not abandoned.
    let left = ledger(&ws.ledger());
    let rows = left.by_key();
    for delivery in fake.deliveries() {
        let row = rows[delivery.retry_key.as_deref().unwrap()];
        assert_eq!(row.status, "sent", "accepted before the signal: {row:?}");
    }

    let rest = ["--concurrency", "64", "--custom-aggregation"];
    let run = ws.run(&patients, Some((TOKEN, &fake)), &rest);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
}

#[test]
fn concurrency_limit_is_never_exceeded() {
    const N: usize = 120;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(50)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--concurrency", "4", "--custom-aggregation"];
    let run = ws.run(&patients, Some((TOKEN, &fake)), &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
    assert!(
        fake.max_in_flight() <= 4,
        "{} requests in flight at once",
        fake.max_in_flight()
    );
}

#[test]
fn two_runs_at_once_do_not_double_send() {
    const N: usize = 2_000;
    let fake = FakeLine::start(Faults::with_latency(Duration::from_millis(2)));
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let args = ["--rate", "5000", "--custom-aggregation"];
    let first = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    let second = spawn(ws.command(&patients, Some((TOKEN, &fake)), &args));
    let runs = [finish(first), finish(second)];
    for run in &runs {
        assert!(
            run.code == 0 || run.code == 2,
            "exit {}\n{}",
            run.code,
            run.stderr
        );
        if run.code == 2 {
            assert!(
                run.stderr.contains("another steprule run"),
                "says why it stopped:\n{}",
                run.stderr
            );
        }
    }
    assert!(runs.iter().any(|r| r.code == 0), "one of them ran");
    eprintln!(
        "two runs at once exited {} and {}",
        runs[0].code, runs[1].code
    );
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
}

#[test]
fn rate_limit_is_never_exceeded() {
    const N: usize = 1_000;
    const RATE: usize = 200;
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let rate = RATE.to_string();
    let run = ws.run(
        &patients,
        Some((TOKEN, &fake)),
        &["--rate", &rate, "--custom-aggregation"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_delivered_exactly_once(&fake, &ws.ledger(), N);
    // Any 1 s window: at most RATE, plus one for the window's two ends, plus a little for
    // requests that the loopback delivered closer together than they were sent.
    let max = fake.max_requests_in_any_second();
    eprintln!("at --rate {RATE}: at most {max} requests in any 1 s window");
    assert!(
        max <= RATE + 1 + RATE / 100,
        "{max} requests within one second at --rate {RATE}; per second: {:?}",
        fake.requests_per_second()
    );
}

#[test]
fn permanent_4xx_is_failed_not_retried() {
    let refused = fixture_user_id("R2");
    let fake = FakeLine::start(Faults {
        reject_to: HashSet::from([refused.clone()]),
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(
        &fixture_patients(),
        Some((TOKEN, &fake)),
        &["--custom-aggregation"],
    );
    assert!(run.code == 0, "exit {}\n{}", run.code, run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("failed")),
        (4, 1),
        "{}",
        run.stderr
    );
    assert_eq!(fake.requests_to(&refused), 1, "a 400 is not retried");
    let row = ledger(&ws.ledger()).row("R2", "booking_confirm").clone();
    assert_eq!(row.status, "failed", "{row:?}");
    assert_eq!(row.attempts, 1, "{row:?}");
    let error = row.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("400"),
        "last_error says what LINE said: {row:?}"
    );

    // Not on the next run either.
    let again = ws.run(
        &fixture_patients(),
        Some((TOKEN, &fake)),
        &["--custom-aggregation"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        fake.requests_to(&refused),
        1,
        "a failed send is not retried by a rerun"
    );
    assert_eq!(
        ledger(&ws.ledger()).row("R2", "booking_confirm").status,
        "failed"
    );
}

#[test]
fn sends_left_pending_after_max_attempts_are_retried_next_run_with_the_same_key() {
    let down = FakeLine::start(Faults {
        error_before: 1.0,
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(
        &fixture_patients(),
        Some((TOKEN, &down)),
        &["--max-attempts", "2"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("retrying later")),
        (0, 5),
        "{}",
        run.stderr
    );
    let pending = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = pending.row(patient, step);
        assert_eq!(row.status, "pending", "{row:?}");
        assert_eq!(down.attempts_for_key(&row.retry_key), 2, "{row:?}");
        assert!(
            row.last_error.as_deref().unwrap_or("").contains("500"),
            "{row:?}"
        );
    }

    let up = FakeLine::start(Faults::none());
    let run = ws.run(&fixture_patients(), Some((TOKEN, &up)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("sent"), 5, "{}", run.stderr);
    let sent = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let before = pending.row(patient, step);
        let after = sent.row(patient, step);
        assert_eq!(after.status, "sent");
        assert_eq!(
            after.retry_key, before.retry_key,
            "the same retry key on the next run"
        );
        assert_eq!(
            up.accepted_request_id(&after.retry_key),
            after.line_request_id
        );
    }
}

#[test]
fn a_retry_within_the_run_is_judged_at_the_runs_now_not_the_wall_clock() {
    // Every first attempt gets a 500; the retry a moment later succeeds. At --now 10:00 none of
    // the five sends expires before 11:00 (R3's reminder), so all five go out on attempt 2,
    // whatever the wall clock says.
    let fake = FakeLine::start(Faults {
        error_first_attempts: 1,
        ..Faults::none()
    });
    let ws = Workspace::new();
    let run = ws.run(&fixture_patients(), Some((TOKEN, &fake)), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("sent"), run.count("expired")),
        (5, 0),
        "{}",
        run.stderr
    );
    let ledger = ledger(&ws.ledger());
    for (patient, step) in DUE_IN_FIXTURE {
        let row = ledger.row(patient, step);
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 2), "{row:?}");
    }
}

#[test]
fn bad_rows_are_skipped_and_the_rest_delivered_with_exit_code_3() {
    let fake = FakeLine::start(Faults::none());
    let ws = Workspace::new();
    let run = ws.run(
        &fixtures().join("run/bad_rows.csv"),
        Some((TOKEN, &fake)),
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(":3: column `stage_entered_at`"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("秘密"),
        "names never appear in messages"
    );
    assert_eq!(
        (run.count("sent"), run.count("skipped rows")),
        (2, 1),
        "{}",
        run.stderr
    );
    assert_eq!(fake.accepted(), 2);
}

// ---------------------------------------------------------------------------------------------
// Without LINE, and the token

#[test]
fn without_token_deliveries_go_to_the_outbox() {
    // Rules, templates and patients copied to a scratch folder so that the ledger and outbox
    // land in their default place, `.steprule/` beside the rules.
    let ws = Workspace::new();
    let source = fixtures().join("run");
    std::fs::create_dir(ws.path().join("templates")).unwrap();
    for file in ["clinic.step", "patients.csv"] {
        std::fs::copy(source.join(file), ws.path().join(file)).unwrap();
    }
    for entry in std::fs::read_dir(source.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            ws.path().join("templates").join(entry.file_name()),
        )
        .unwrap();
    }
    let run_here = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        command
            .args([
                "run",
                "clinic.step",
                "--patients",
                "patients.csv",
                "--now",
                NOW,
            ])
            .current_dir(ws.path())
            .env("NO_COLOR", "1")
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
        output(command)
    };
    let run = run_here();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("outbox"),
        "says where the messages went:\n{}",
        run.stderr
    );
    let outbox_path = ws.path().join(".steprule/outbox.jsonl");
    let outbox = std::fs::read_to_string(&outbox_path).expect("the default outbox");
    let lines: Vec<serde_json::Value> = outbox
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let keys: HashSet<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                HashSet::from(["patient", "to", "step", "variant", "retry_key", "messages"]),
                "{l}"
            );
            assert_eq!(l["to"], fixture_user_id(l["patient"].as_str().unwrap()));
            assert!(
                l["messages"].as_array().is_some_and(|m| !m.is_empty()),
                "{l}"
            );
            (
                l["patient"].as_str().unwrap().to_owned(),
                l["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = DUE_IN_FIXTURE
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want, "one line per due send");
    let ledger = ledger(&ws.path().join(".steprule/ledger.db"));
    for line in &lines {
        let row = ledger.row(
            line["patient"].as_str().unwrap(),
            line["step"].as_str().unwrap(),
        );
        assert_eq!(
            line["retry_key"],
            row.retry_key.as_str(),
            "the outbox carries the ledger's key"
        );
    }

    let again = run_here();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(&outbox_path).unwrap(),
        outbox,
        "a second run adds nothing"
    );
}

#[test]
fn token_never_appears_in_output_logs_or_ledger() {
    const SECRET: &str = "test-token-SECRET-4f1c";
    let ws = Workspace::new();
    let mut runs = Vec::new();

    // A wrong token: LINE answers 401 to everything.
    let refusing = FakeLine::start_with_token("the-right-token", Faults::none());
    runs.push(ws.run(
        &fixture_patients(),
        Some((SECRET, &refusing)),
        &["--max-attempts", "2"],
    ));
    assert!(refusing.unauthorized() > 0, "the 401 path ran");

    // The right token, through 500s, 429s, dropped connections and gave-up retries.
    let ws2 = Workspace::new();
    let flaky = FakeLine::start_with_token(
        SECRET,
        Faults {
            error_before: 0.3,
            error_after: 0.2,
            too_many_requests: 0.1,
            drop_before: 0.1,
            ..Faults::none()
        },
    );
    runs.push(ws2.run(
        &fixture_patients(),
        Some((SECRET, &flaky)),
        &["--max-attempts", "1"],
    ));
    runs.push(ws2.run(&fixture_patients(), Some((SECRET, &flaky)), &[]));
    // Nobody listening at all.
    let ws3 = Workspace::new();
    let closed = {
        let gone = FakeLine::start(Faults::none());
        gone.base_url()
    };
    let mut command = ws3.command(&fixture_patients(), None, &["--max-attempts", "1"]);
    command
        .env("LINE_CHANNEL_ACCESS_TOKEN", SECRET)
        .args(["--line-api-base", &closed]);
    runs.push(output(command));
    // --dry-run with the token set: the outbox.
    runs.push(ws3.run(&fixture_patients(), Some((SECRET, &flaky)), &["--dry-run"]));

    for run in &runs {
        assert!(
            (0..=3).contains(&run.code),
            "exit {}\n{}",
            run.code,
            run.stderr
        );
        assert!(
            !run.stdout.contains(SECRET),
            "token in stdout:\n{}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(SECRET),
            "token in stderr:\n{}",
            run.stderr
        );
    }
    for dir in [ws.path(), ws2.path(), ws3.path()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "the token is in {}", path.display());
        }
    }
    assert!(ws3.outbox().exists(), "--dry-run wrote the outbox");
}
