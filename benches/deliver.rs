//! `steprule run` at LINE's push rate: the release binary delivers 20,000 due sends to the fake
//! LINE API (tests/support/fake_line/, 20 ms per request) with `--rate 2000 --concurrency 64`.
//! Reports the sustained throughput over the middle of the run, the most requests the server saw
//! within any one second (never above the limit: LINE answers 429 past 2,000/s), and the
//! throughput as a share of the limit (target ≥ 0.95).
//!
//! Run: `cargo bench --bench deliver`. `STEPRULE_BENCH_SENDS` and `STEPRULE_BENCH_RATE` change the
//! number of sends and the rate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../tests/support/fake_line/mod.rs"]
mod fake_line;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use fake_line::{FakeLine, Faults, TOKEN};

const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 64;
const TARGET_RATIO: f64 = 0.95;

fn main() -> ExitCode {
    let sends = env_number("STEPRULE_BENCH_SENDS", 20_000);
    let rate = env_number("STEPRULE_BENCH_RATE", 2_000);
    let binary = steprule_binary();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let patients = booked_patients(dir.path(), sends);
    let fake = FakeLine::start(Faults::with_latency(LATENCY));

    let started = Instant::now();
    let output = Command::new(&binary)
        .arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run/clinic.step"))
        .arg("--patients")
        .arg(&patients)
        .args(["--now", "2026-11-25 10:00"])
        .arg("--ledger")
        .arg(dir.path().join("ledger.db"))
        .arg("--line-api-base")
        .arg(fake.base_url())
        .args(["--rate", &rate.to_string()])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .arg("--custom-aggregation")
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .output()
        .expect("the steprule binary runs");
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("steprule run failed ({}):\n{stderr}", output.status);
        return ExitCode::FAILURE;
    }

    let mut times: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    times.sort();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        eprintln!("no request reached the fake LINE server:\n{stderr}");
        return ExitCode::FAILURE;
    };
    let span = last.duration_since(first);
    // The middle 80 % of the sending period: no ramp-up, no tail.
    let (from, to) = (first + span / 10, last - span / 10);
    let middle = times.iter().filter(|&&t| t >= from && t <= to).count();
    let sustained = middle as f64 / (to - from).as_secs_f64();
    let max_window = fake.max_requests_in_any_second();
    let ratio = sustained / rate as f64;
    let delivered = fake.accepted();

    println!(
        "steprule run → fake LINE ({} ms per request), {sends} sends, --rate {rate} --concurrency {CONCURRENCY}",
        LATENCY.as_millis()
    );
    println!("| measure                                  | value        |");
    println!("|------------------------------------------|--------------|");
    row("messages delivered (exactly once)", format!("{delivered}"));
    row("requests seen", format!("{}", times.len()));
    row(
        "wall time of the run",
        format!("{:.2} s", wall.as_secs_f64()),
    );
    row(
        "sending period (first → last request)",
        format!("{:.2} s", span.as_secs_f64()),
    );
    row(
        "sustained throughput (middle 80 %)",
        format!("{sustained:.0} /s"),
    );
    row("max requests in any 1 s window", format!("{max_window}"));
    row("throughput / limit", format!("{ratio:.3}"));
    println!("requests per second: {:?}", fake.requests_per_second());
    println!("{}", stderr.lines().last().unwrap_or(""));

    let mut ok = true;
    if max_window > rate + 1 {
        println!("FAIL: {max_window} requests within one second exceeds --rate {rate}");
        ok = false;
    }
    if ratio < TARGET_RATIO {
        println!("FAIL: throughput is {ratio:.3} of the limit (target ≥ {TARGET_RATIO})");
        ok = false;
    }
    if delivered != sends {
        println!("FAIL: {delivered} of {sends} messages delivered");
        ok = false;
    }
    if ok {
        println!("ok: never above the limit, {ratio:.3} of it sustained");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn row(measure: &str, value: String) {
    println!("| {measure:<40} | {value:>12} |");
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The binary cargo built for this bench (the release profile under `cargo bench`).
fn steprule_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_steprule") {
        return PathBuf::from(path);
    }
    // Older cargo: the bench runs from target/<profile>/deps, the binary is in target/<profile>.
    let exe = std::env::current_exe().expect("the bench's own path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    profile.join(format!("steprule{}", std::env::consts::EXE_SUFFIX))
}

/// `n` booked patients whose booking_confirm (`after 0m`) is due at 2026-11-25 10:00.
fn booked_patients(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("patients.csv");
    let mut csv = String::from(
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at,cancelled_at\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "P{i:05},U{i:032x},テスト {i},booked,2026-11-25 09:30,1980-01-01,,false,,\n"
        ));
    }
    std::fs::write(&path, csv).expect("write the patients");
    path
}
