//! `steprule run` on the PostgreSQL ledger, on a throwaway cluster of its own
//! (tests/support/postgres.rs: initdb into a temp dir, `fsync=off`, deleted when the bench ends).
//!
//! 1. **Claim and mark**: N booked patients (default 100,000) whose `booking_confirm` is due now
//!    under `tests/fixtures/run/clinic.step`, one fresh database per round, and 1, 2 and 4
//!    `steprule run` worker processes started together against the fake LINE server at zero
//!    latency (`--rate 100000`, which never binds). Per round: wall time from the first spawn
//!    to the last exit, sends/s overall, each worker's share, the ratio to one worker, and that
//!    every send reached LINE exactly once. Target: ≥ 5,000 sends/s with 4 workers.
//! 2. **The 1,000,000-patient run** of `benches/run.rs` (the same synthetic export, seed, rules,
//!    templates and `--now`, outbox mode, one worker): first run and rerun on SQLite, then on
//!    PostgreSQL, side by side with the ratio PostgreSQL / SQLite, and that both found the same
//!    sends.
//!
//! Run: `cargo bench --bench pg` (needs Debian's `postgresql` package).
//! `STEPRULE_BENCH_SENDS=20000` and `STEPRULE_BENCH_PATIENTS=100000` make it quicker;
//! `STEPRULE_BENCH_ONLY=claims` or `=million` runs one part.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/child.rs"]
mod child;
#[path = "../tests/support/fake_line/mod.rs"]
mod fake_line;
#[path = "support/figures.rs"]
mod figures;
#[path = "../tests/support/postgres.rs"]
mod pg;
#[path = "support/synthetic.rs"]
mod synthetic;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use child::{megabytes, verdict};
use fake_line::{FakeLine, Faults, TOKEN};
use figures::thousands;

const WORKERS: [usize; 3] = [1, 2, 4];
const TARGET_SENDS_PER_SECOND: f64 = 5_000.0;
const CLAIMS_NOW: &str = "2026-11-25 10:00";

/// As benches/run.rs.
const RULES: &str = "benches/fixtures/thirty_steps.step";
const TEMPLATES: &str = "rules/templates";
const NOW: &str = "2026-11-25 09:00";
const SEED: u64 = 42;

fn main() -> ExitCode {
    match bench() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<bool, String> {
    let server = pg::server().ok_or("no PostgreSQL: install Debian's postgresql package")?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_steprule"));
    let only = std::env::var("STEPRULE_BENCH_ONLY").unwrap_or_default();
    println!(
        "steprule run on PostgreSQL, {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut ok = true;
    if only.is_empty() || only == "claims" {
        ok &= claim_and_mark(server, &binary, env_number("STEPRULE_BENCH_SENDS", 100_000))?;
    }
    if only.is_empty() || only == "million" {
        ok &= million(
            server,
            &binary,
            env_number("STEPRULE_BENCH_PATIENTS", 1_000_000),
        )?;
    }
    println!("\nload average at the end: {}", load_average());
    Ok(ok)
}

/// One round of the claim-and-mark part.
struct Round {
    workers: usize,
    wall: Duration,
    sent_by_each: Vec<u64>,
    accepted: usize,
    requests: usize,
}

fn claim_and_mark(server: &pg::PgServer, binary: &Path, sends: usize) -> Result<bool, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    let patients = booked_patients(dir.path(), sends)?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run/clinic.step");
    println!(
        "\n1. claim and mark: {} due sends, 1/2/4 workers on one ledger, fake LINE at zero latency",
        thousands(sends as u64)
    );
    let mut rounds = Vec::new();
    for workers in WORKERS {
        let url = server.fresh_database(&format!("claims_{workers}"));
        let fake = FakeLine::start(Faults::none());
        let started = Instant::now();
        let children: Vec<_> = (0..workers)
            .map(|n| {
                let err = dir.path().join(format!("worker_{workers}_{n}.err"));
                Command::new(binary)
                    .arg("run")
                    .arg(&rules)
                    .arg("--patients")
                    .arg(&patients)
                    .args([
                        "--now",
                        CLAIMS_NOW,
                        "--rate",
                        "100000",
                        "--concurrency",
                        "64",
                    ])
                    .arg("--line-api-base")
                    .arg(fake.base_url())
                    .env("STEPRULE_LEDGER_URL", &url)
                    .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
                    .env("NO_COLOR", "1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(File::create(&err).map_err(|e| e.to_string())?)
                    .spawn()
                    .map(|child| (child, err))
                    .map_err(|e| format!("cannot start steprule run: {e}"))
            })
            .collect::<Result<_, String>>()?;
        let mut sent_by_each = Vec::new();
        for (child, err) in children {
            let (code, _) = child::wait(child)?;
            let summary = summary_line(&err)?;
            if code != Some(0) {
                return Err(format!("a worker exited with {code:?}: {summary}"));
            }
            sent_by_each.push(field(&summary, "sent"));
        }
        let round = Round {
            workers,
            wall: started.elapsed(),
            sent_by_each,
            accepted: fake.accepted(),
            requests: fake.request_count(),
        };
        println!(
            "  {workers} worker(s): {:.2} s, sent {:?}",
            round.wall.as_secs_f64(),
            round.sent_by_each
        );
        rounds.push(round);
    }
    Ok(print_rounds(&rounds, sends))
}

fn print_rounds(rounds: &[Round], sends: usize) -> bool {
    println!("\n| workers | wall | sends/s | × 1 worker | sent by each | exactly once |");
    println!("| ---: | ---: | ---: | ---: | --- | --- |");
    let base = rounds
        .first()
        .map_or(1.0, |r| sends as f64 / r.wall.as_secs_f64());
    let mut ok = true;
    for round in rounds {
        let rate = sends as f64 / round.wall.as_secs_f64();
        let once = round.accepted == sends
            && round.sent_by_each.iter().sum::<u64>() == sends as u64
            && round.requests == sends;
        let judged = round.workers == 4;
        let target = if judged {
            format!(
                " {} (≥ {})",
                verdict(rate >= TARGET_SENDS_PER_SECOND),
                thousands(TARGET_SENDS_PER_SECOND as u64)
            )
        } else {
            String::new()
        };
        println!(
            "| {} | {:.2} s | {}{target} | {:.2}× | {:?} | {} ({} accepted, {} requests) |",
            round.workers,
            round.wall.as_secs_f64(),
            thousands(rate as u64),
            rate / base,
            round.sent_by_each,
            verdict(once),
            thousands(round.accepted as u64),
            thousands(round.requests as u64),
        );
        ok &= once && (!judged || rate >= TARGET_SENDS_PER_SECOND);
    }
    ok
}

/// One child of the million-patient part.
struct Timed {
    wall: Duration,
    peak_rss: Option<u64>,
    summary: String,
}

fn million(server: &pg::PgServer, binary: &Path, patients: u64) -> Result<bool, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    let csv = dir.path().join("patients.csv");
    let now = NaiveDateTime::parse_from_str(NOW, "%Y-%m-%d %H:%M").map_err(|e| e.to_string())?;
    let mut rows = synthetic::PatientCsv::new(patients, now, SEED);
    let mut file = File::create(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    std::io::copy(&mut rows, &mut file).map_err(|e| format!("{}: {e}", csv.display()))?;
    drop(file);
    println!(
        "\n2. {} patients ({RULES}, --now {NOW}, outbox mode, one worker): SQLite vs PostgreSQL",
        thousands(patients)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let url = server.fresh_database("million");
    let ledgers = [
        ("SQLite", dir.path().join("ledger.db").into_os_string()),
        ("PostgreSQL", url.into()),
    ];
    let mut timed = Vec::new();
    for (name, ledger) in &ledgers {
        let outbox = dir.path().join(format!("outbox_{name}.jsonl"));
        for pass in ["first run", "rerun"] {
            let mut command = Command::new(binary);
            command
                .arg("run")
                .arg(root.join(RULES))
                .arg("--templates")
                .arg(root.join(TEMPLATES))
                .arg("--patients")
                .arg(&csv)
                .args(["--now", NOW])
                .arg("--outbox")
                .arg(&outbox)
                .current_dir(dir.path())
                .env("NO_COLOR", "1")
                .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
            // The URL through the environment, where `ps` does not show its password.
            if *name == "PostgreSQL" {
                command.env("STEPRULE_LEDGER_URL", ledger);
            } else {
                command.arg("--ledger").arg(ledger);
            }
            let err = dir.path().join(format!("{name}_{pass}.err"));
            let child = time_child(command, &err)?;
            println!(
                "  {name} {pass}: {:.2} s, peak RSS {}: {}",
                child.wall.as_secs_f64(),
                megabytes(child.peak_rss),
                child.summary
            );
            timed.push(child);
        }
    }
    let [sqlite_first, sqlite_rerun, pg_first, pg_rerun] = &timed[..] else {
        return Err("four runs expected".into());
    };
    println!("\n| | SQLite | PostgreSQL | PostgreSQL / SQLite |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, sqlite, pg) in [
        ("first run", sqlite_first, pg_first),
        ("rerun", sqlite_rerun, pg_rerun),
    ] {
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.2}× |",
            sqlite.wall.as_secs_f64(),
            pg.wall.as_secs_f64(),
            pg.wall.as_secs_f64() / sqlite.wall.as_secs_f64()
        );
    }
    // Both ledgers must agree on what was due and sent: the summaries' first figures.
    let agreed = field(&sqlite_first.summary, "due") == field(&pg_first.summary, "due")
        && field(&sqlite_first.summary, "sent") == field(&pg_first.summary, "sent")
        && field(&pg_rerun.summary, "sent") == 0
        && field(&pg_rerun.summary, "already sent") == field(&pg_first.summary, "sent");
    println!(
        "same sends on both ledgers, none again on the rerun: {}",
        verdict(agreed)
    );
    Ok(agreed)
}

fn time_child(mut command: Command, err: &Path) -> Result<Timed, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(err).map_err(|e| e.to_string())?);
    child::settle_disk();
    let started = Instant::now();
    let child = command.spawn().map_err(|e| format!("steprule run: {e}"))?;
    let (code, peak_rss) = child::wait(child)?;
    let wall = started.elapsed();
    let summary = summary_line(err)?;
    if code != Some(0) {
        return Err(format!("steprule run exited with {code:?}: {summary}"));
    }
    Ok(Timed {
        wall,
        peak_rss,
        summary,
    })
}

/// `n` booked patients whose booking_confirm (`after 0m`) is due at [`CLAIMS_NOW`].
fn booked_patients(dir: &Path, n: usize) -> Result<PathBuf, String> {
    let path = dir.join("patients.csv");
    let mut csv = String::from(
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at,cancelled_at\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "P{i:06},U{i:032x},テスト {i},booked,2026-11-25 09:30,1980-01-01,,false,,\n"
        ));
    }
    std::fs::write(&path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The closing summary line a run writes to stderr (`due …, sent …, …`), or its last lines.
fn summary_line(err: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(err).map_err(|e| format!("{}: {e}", err.display()))?;
    Ok(text
        .lines()
        .rev()
        .find(|line| line.starts_with("due "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.lines().rev().take(5).collect::<Vec<_>>().join(" / ")))
}

/// The figure after `name ` in a summary line (`due 5, sent 5, already sent 0, …`).
fn field(summary: &str, name: &str) -> u64 {
    summary
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}
