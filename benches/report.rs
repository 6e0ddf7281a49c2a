//! `steprule report` on a ledger of 10,000,000 sends and about 2,000,000 events over 24 months
//! (`support/ledger_gen.rs`: the 30 steps of `fixtures/thirty_steps.step`, `checkup` with two
//! arms, 3% outbox sends, clicks, blocks, bookings, visits and follows after deliveries), as a
//! clinic runs it: the release binary, for one month, as JSON and as a table. Prints each
//! run's wall time and peak resident set (`ru_maxrss` from `wait4`) beside the targets: under
//! 10 s and 300 MB. The exit status is a failure when a target is missed.
//!
//! The ledger (about 4 GB) is written once into `target/bench-report/` and reused while its
//! size and its ledger version are the same (a ledger of an older version would be upgraded by
//! the first, timed, report); delete that folder to rebuild it. It is written by a child process of its
//! own: a writer's memory (a 256 MB page cache) stays with the process that held it, and a
//! report child forked from that process started out that large, so its peak resident set
//! measured the writer (422 MB at 1,000,000 sends, 562 MB at 10,000,000) instead of the report
//! (51 MB and 76 MB).
//!
//! Run: `cargo bench --bench report`; `STEPRULE_BENCH_SENDS=1000000` for a quicker run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/child.rs"]
mod child;
#[path = "support/ledger_gen.rs"]
mod ledger_gen;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use child::{megabytes, verdict};
use ledger_gen::{Spec, StepSpec};

const RULES: &str = "benches/fixtures/thirty_steps.step";
const TEMPLATES: &str = "rules/templates";
const DEFAULT_SENDS: u64 = 10_000_000;
/// The ledger ends at 2026-11-01 00:00 in Tokyo; the report reads its last month.
const END: &str = "2026-10-31T15:00:00Z";
const MONTH: &str = "2026-10";
const TARGET_WALL: Duration = Duration::from_secs(10);
const TARGET_RSS_BYTES: u64 = 300_000_000;

/// Set (to the ledger's path) in the child that writes the ledger.
const WRITER: &str = "STEPRULE_BENCH_WRITE_LEDGER";

fn main() -> ExitCode {
    let result = match std::env::var_os(WRITER) {
        Some(path) => write(Path::new(env!("CARGO_MANIFEST_DIR")), Path::new(&path)).map(|()| true),
        None => bench(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn sends() -> Result<u64, String> {
    match std::env::var("STEPRULE_BENCH_SENDS") {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .map_err(|_| format!("STEPRULE_BENCH_SENDS: not a number: {text}")),
        Err(_) => Ok(DEFAULT_SENDS),
    }
}

/// The ledger version (`PRAGMA user_version`) of the SQLite file at `path`.
fn user_version(path: &Path) -> Result<i64, String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// An empty ledger of this steprule's version, made in `dir`.
fn fresh_ledger(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("fresh.db");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    steprule::ledger::Ledger::open(&path).map_err(|e| e.to_string())?;
    Ok(path)
}

fn bench() -> Result<bool, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_steprule"));
    let sends = sends()?;
    let dir = root.join("target/bench-report");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ledger = dir.join(format!("ledger-{sends}.db"));
    if ledger.exists() && user_version(&ledger)? != user_version(&fresh_ledger(&dir)?)? {
        println!("the ledger was written at an older ledger version: writing it again");
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", ledger.display()));
            if file.exists() {
                std::fs::remove_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
    }
    if !ledger.exists() {
        let status = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .env(WRITER, &ledger)
            .env("STEPRULE_BENCH_SENDS", sends.to_string())
            .status()
            .map_err(|e| format!("the ledger writer: {e}"))?;
        if !status.success() {
            return Err(format!("the ledger writer failed: {status}"));
        }
    }
    let size = std::fs::metadata(&ledger).map_err(|e| e.to_string())?.len();
    println!(
        "steprule report --month {MONTH} on {} ({:.1} GB), {} cores",
        ledger.display(),
        size as f64 / 1e9,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut ok = true;
    for format in ["json", "table"] {
        let out = dir.join(format!("report.{format}"));
        let mut command = Command::new(&binary);
        command
            .current_dir(root)
            .args(["report", RULES, "--templates", TEMPLATES, "--month", MONTH])
            .args(["--format", format, "--out"])
            .arg(&out)
            .arg("--ledger")
            .arg(&ledger);
        let (wall, peak) = run_child(command, &dir.join("report.err"))?;
        let wall_ok = wall < TARGET_WALL;
        let rss_ok = peak.is_none_or(|p| p < TARGET_RSS_BYTES);
        println!(
            "  {format:5}: {:.2} s (target < {} s: {}), peak RSS {} (target < 300 MB: {})",
            wall.as_secs_f64(),
            TARGET_WALL.as_secs(),
            verdict(wall_ok),
            megabytes(peak),
            verdict(rss_ok)
        );
        ok &= wall_ok && rss_ok;
    }
    Ok(ok)
}

/// Writes the synthetic ledger, timing it.
/// The writer child: the ledger at `ledger`, of `STEPRULE_BENCH_SENDS` sends.
fn write(root: &Path, ledger: &Path) -> Result<(), String> {
    let sends = sends()?;
    let outcome = steprule::check_path(&root.join(RULES), Some(&root.join(TEMPLATES)))
        .map_err(|e| e.to_string())?;
    let rules = outcome.rules.ok_or("the bench's rules have errors")?;
    let steps = StepSpec::of(&rules);
    let spec = Spec {
        sends,
        sends_per_patient: 20,
        // About 2,000,000 events per 10,000,000 sends: only LINE deliveries (92%) get them.
        events_per_send: 0.217,
        months: 24,
        end: END.parse().map_err(|e| format!("{e}"))?,
        seed: 42,
    };
    let partial = ledger.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let started = Instant::now();
    let written = ledger_gen::write_ledger(&partial, &steps, &spec)?;
    std::fs::rename(&partial, ledger).map_err(|e| e.to_string())?;
    println!(
        "wrote {} sends and {} events for {} patients in {:.0} s",
        written.sends,
        written.events,
        written.patients,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `command` to the end, timing it from spawn to exit, with its own peak RSS.
fn run_child(mut command: Command, err: &Path) -> Result<(Duration, Option<u64>), String> {
    let file = File::create(err).map_err(|e| format!("{}: {e}", err.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    child::settle_disk();
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start steprule: {e}"))?;
    let (code, peak) = child::wait(child)?;
    let wall = started.elapsed();
    if code != Some(0) {
        let stderr = std::fs::read_to_string(err).unwrap_or_default();
        return Err(format!("steprule report exited with {code:?}:\n{stderr}"));
    }
    Ok((wall, peak))
}
