//! `steprule run` against `steprule plan` on the same patients, as a clinic runs them: the
//! release binary, in outbox mode (no `LINE_CHANNEL_ACCESS_TOKEN`, a fresh ledger and outbox in
//! a temporary folder), for 100,000 and for 1,000,000 synthetic patients
//! (`support/synthetic.rs`) under `fixtures/thirty_steps.step` with `rules/templates`.
//!
//! Per size it times three children: `plan` over the window `run` evaluates, the first `run`
//! (every due send claimed in the ledger, rendered and written to the outbox) and a rerun (every
//! send found in the ledger, none written). The three run in rounds, interleaved (a fresh ledger
//! and outbox each round), and each is reported by its median over the rounds: this machine's
//! speed drifts by a quarter within minutes, and one slow sample of a child timed once decided
//! a verdict. It prints each one's median wall time and highest peak resident set (`ru_maxrss`
//! from `wait4`), the ratios first run / plan and rerun / plan (the median of the rounds'
//! ratios, and their range: a round's three children run within seconds of each other, so its
//! ratio is less moved by the machine's drift than a ratio of medians taken minutes apart), and
//! how the time per patient grows from the smallest size to the largest, each beside its
//! target. Beside them, unjudged: each child's CPU time (user and system, from `wait4`), its
//! ratios to `plan`'s, the first run's CPU time beyond `plan`'s per send due (its own cost,
//! which a faster `plan` does not move), and the time the hypervisor stole from the machine
//! while it ran (`steal` in `/proc/stat`), which wall times include and CPU times do not.
//! Targets: first run ≤ 2× plan and rerun ≤ 1.2× plan at 1,000,000 patients (smaller sizes
//! show their ratios unjudged), per patient at 1M ≤ 1.3× per patient at 100k, peak RSS < 300
//! MB. The exit status is a failure when a target is missed or when plan and run disagree on
//! what is due.
//!
//! Run: `cargo bench --bench run`; `STEPRULE_BENCH_SIZES=100000` (comma-separated) for a
//! quicker run; `STEPRULE_BENCH_ROUNDS=1` (1–20, default 5) for fewer rounds;
//! `STEPRULE_BENCH_KEEP=1` keeps each size's folder (patients, ledger) for a profiler.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/child.rs"]
mod child;
#[path = "support/figures.rs"]
mod figures;
#[path = "support/synthetic.rs"]
mod synthetic;

use child::{megabytes, verdict};
use figures::{median, thousands};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

const RULES: &str = "benches/fixtures/thirty_steps.step";
const TEMPLATES: &str = "rules/templates";
const NOW: &str = "2026-11-25 09:00";
/// `run` evaluates the window [now, now + 1 s) (`app::run`'s `Cycle::queue_due_sends`): `plan`
/// over the same window evaluates every patient the same way and finds the same sends, so the
/// two differ only by what `run` does with them.
const WINDOW_END: &str = "2026-11-25 09:00:01";
const SEED: u64 = 42;
const DEFAULT_SIZES: [u64; 2] = [100_000, 1_000_000];
/// Rounds of the three children per size, by default and at most.
const DEFAULT_ROUNDS: usize = 5;
const MAX_ROUNDS: usize = 20;

/// The size the issue sets the ratio targets for.
const TARGET_SIZE: u64 = 1_000_000;
const TARGET_FIRST_RUN: f64 = 2.0;
const TARGET_RERUN: f64 = 1.2;
const TARGET_PER_PATIENT_GROWTH: f64 = 1.3;
const TARGET_RSS_BYTES: u64 = 300_000_000;

/// One child process, timed.
struct Child {
    wall: Duration,
    /// Peak resident set in bytes, where the platform reports it.
    peak_rss: Option<u64>,
    /// User and system time, all threads, where the platform reports it.
    cpu: Option<Duration>,
    /// The machine's CPU time taken by its hypervisor while the child ran (Linux).
    stolen: Option<Duration>,
}

/// The bench's folder: removed when the bench ends, or kept for a profiler.
enum Kept {
    Temp(tempfile::TempDir),
    Path(PathBuf),
}

impl Kept {
    fn path(&self) -> &Path {
        match self {
            Kept::Temp(dir) => dir.path(),
            Kept::Path(path) => path,
        }
    }
}

/// The three children at one size: each one's median wall time and highest peak RSS over the
/// rounds, and each round's ratios.
struct Size {
    patients: u64,
    plan: Child,
    first_run: Child,
    rerun: Child,
    first_ratios: Vec<f64>,
    rerun_ratios: Vec<f64>,
    /// The same ratios of CPU time (empty where the platform gives none).
    first_cpu_ratios: Vec<f64>,
    rerun_cpu_ratios: Vec<f64>,
    /// Each round's first-run CPU time beyond its `plan`'s, in microseconds per send due: what
    /// a first run costs of its own, which does not move when `plan` gets faster.
    first_cpu_per_send: Vec<f64>,
}

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

/// True when every target is met and plan and run agree.
fn bench() -> Result<bool, String> {
    let sizes = sizes()?;
    let rounds = rounds()?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_steprule"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!(
        "steprule run vs plan: {RULES} with {TEMPLATES}, --now {NOW}, outbox mode, {} cores, \
         median of {rounds} interleaved rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut ok = true;
    let mut measured = Vec::new();
    for &patients in &sizes {
        let (size, agreed) = measure_size(&binary, root, patients, rounds)?;
        ok &= agreed;
        measured.push(size);
    }
    ok &= print_table(&measured);
    print_cpu_table(&measured);
    ok &= print_growth(&measured);
    Ok(ok)
}

/// `STEPRULE_BENCH_SIZES=100000,1000000` (underscores allowed), default both.
fn sizes() -> Result<Vec<u64>, String> {
    let Ok(text) = std::env::var("STEPRULE_BENCH_SIZES") else {
        return Ok(DEFAULT_SIZES.to_vec());
    };
    let sizes = text
        .split(',')
        .map(|part| {
            let part = part.trim().replace('_', "");
            part.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("STEPRULE_BENCH_SIZES: `{part}` is not a patient count"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sizes)
}

/// `STEPRULE_BENCH_ROUNDS=3`: 1 to [`MAX_ROUNDS`], default [`DEFAULT_ROUNDS`].
fn rounds() -> Result<usize, String> {
    let Ok(text) = std::env::var("STEPRULE_BENCH_ROUNDS") else {
        return Ok(DEFAULT_ROUNDS);
    };
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_ROUNDS).contains(n))
        .ok_or_else(|| {
            format!("STEPRULE_BENCH_ROUNDS: `{text}` is not a count from 1 to {MAX_ROUNDS}")
        })
}

/// Generates the patients (not timed), then times plan, the first run and the rerun in
/// `rounds` rounds; the bool says whether they agree on what is due in every round.
fn measure_size(
    binary: &Path,
    root: &Path,
    patients: u64,
    rounds: usize,
) -> Result<(Size, bool), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    // `STEPRULE_BENCH_KEEP=1` leaves the folder (patients, ledger, outbox) for a profiler.
    let dir = if std::env::var_os("STEPRULE_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!("  keeping {}", kept.display());
        Kept::Path(kept)
    } else {
        Kept::Temp(dir)
    };
    let csv = dir.path().join("patients.csv");
    let started = Instant::now();
    let now = NaiveDateTime::parse_from_str(NOW, "%Y-%m-%d %H:%M").map_err(|e| e.to_string())?;
    let mut rows = synthetic::PatientCsv::new(patients, now, SEED);
    let mut file = File::create(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    std::io::copy(&mut rows, &mut file).map_err(|e| format!("{}: {e}", csv.display()))?;
    drop(file);
    println!(
        "\n{} patients: generated in {:.2} s (not timed)",
        thousands(patients),
        started.elapsed().as_secs_f64()
    );

    let rules = root.join(RULES);
    let templates = root.join(TEMPLATES);
    let common = |command: &mut Command| {
        command
            .arg(&rules)
            .arg("--templates")
            .arg(&templates)
            .arg("--patients")
            .arg(&csv)
            .args(["--now", NOW])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    };

    let ledger = dir.path().join("ledger.db");
    let outbox = dir.path().join("outbox.jsonl");
    let run = |name: &str| -> Result<(Child, String), String> {
        let mut command = Command::new(binary);
        command.arg("run");
        common(&mut command);
        command
            .arg("--ledger")
            .arg(&ledger)
            .arg("--outbox")
            .arg(&outbox);
        let err = dir.path().join(format!("{name}.err"));
        let out = dir.path().join(format!("{name}.out"));
        let child = run_child(command, &csv, &out, &err, name)?;
        Ok((child, summary_line(&err)?))
    };
    let (mut plans, mut firsts, mut reruns) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_cpu_per_send = Vec::new();
    let mut agreed = true;
    for round in 1..=rounds {
        let mut plan = Command::new(binary);
        plan.arg("plan");
        common(&mut plan);
        plan.args(["--to", WINDOW_END, "--format", "json"]);
        let plan_out = dir.path().join("plan.jsonl");
        let plan = run_child(plan, &csv, &plan_out, &dir.path().join("plan.err"), "plan")?;
        let planned = count_lines(&plan_out)?;

        // A first run is a fresh ledger's and outbox's.
        remove_ledger(dir.path(), &ledger, &outbox)?;
        let (first_run, first_summary) = run("first run")?;
        let (rerun, rerun_summary) = run("rerun")?;
        let written = count_lines(&outbox)?;

        let plan_s = plan.wall.as_secs_f64();
        println!(
            "  round {round}: plan {plan_s:.2} s, first run {:.2} s, rerun {:.2} s ({:.2}×, {:.2}×); \
             CPU {} / {} / {}; peak RSS {} / {} / {}",
            first_run.wall.as_secs_f64(),
            rerun.wall.as_secs_f64(),
            first_run.wall.as_secs_f64() / plan_s,
            rerun.wall.as_secs_f64() / plan_s,
            cpu_seconds(plan.cpu),
            cpu_seconds(first_run.cpu),
            cpu_seconds(rerun.cpu),
            megabytes(plan.peak_rss),
            megabytes(first_run.peak_rss),
            megabytes(rerun.peak_rss),
        );
        if round == 1 {
            println!(
                "    plan:      {} sends in the run's window",
                thousands(planned)
            );
            println!(
                "    first run: {first_summary}; {} outbox lines",
                thousands(written)
            );
            println!("    rerun:     {rerun_summary}");
        }
        let expected_first = format!("due {planned}, sent {planned}, already sent 0,");
        let expected_rerun = format!("due {planned}, sent 0, already sent {planned},");
        let round_agreed = first_summary.starts_with(&expected_first)
            && rerun_summary.starts_with(&expected_rerun)
            && written == planned;
        if !round_agreed {
            println!(
                "  FAIL (round {round}): plan and run disagree (expected `{expected_first} …` then \
                 `{expected_rerun} …`, and {planned} outbox lines; got `{first_summary}`, \
                 `{rerun_summary}`, {written} lines)"
            );
        }
        agreed &= round_agreed;
        if let (Some(first), Some(plan), true) = (first_run.cpu, plan.cpu, planned > 0) {
            let beyond = first.as_secs_f64() - plan.as_secs_f64();
            first_cpu_per_send.push(beyond * 1e6 / planned as f64);
        }
        plans.push(plan);
        firsts.push(first_run);
        reruns.push(rerun);
    }
    let ratios = |children: &[Child]| -> Vec<f64> {
        (children.iter().zip(&plans))
            .map(|(child, plan)| child.wall.as_secs_f64() / plan.wall.as_secs_f64())
            .collect()
    };
    let cpu_ratios = |children: &[Child]| -> Vec<f64> {
        (children.iter().zip(&plans))
            .filter_map(|(child, plan)| Some(child.cpu?.as_secs_f64() / plan.cpu?.as_secs_f64()))
            .collect()
    };
    let size = Size {
        patients,
        first_ratios: ratios(&firsts),
        rerun_ratios: ratios(&reruns),
        first_cpu_ratios: cpu_ratios(&firsts),
        rerun_cpu_ratios: cpu_ratios(&reruns),
        first_cpu_per_send,
        plan: summarise(&plans),
        first_run: summarise(&firsts),
        rerun: summarise(&reruns),
    };
    Ok((size, agreed))
}

/// One child's rounds as one: the median wall time, CPU time and time stolen, the highest
/// peak RSS.
fn summarise(rounds: &[Child]) -> Child {
    let wall = median(rounds.iter().map(|c| c.wall.as_secs_f64()).collect());
    let median_of = |times: Vec<f64>| {
        (!times.is_empty()).then(|| Duration::from_secs_f64(median(times).max(0.0)))
    };
    Child {
        wall: Duration::from_secs_f64(wall.max(0.0)),
        peak_rss: rounds.iter().filter_map(|c| c.peak_rss).max(),
        cpu: median_of(
            rounds
                .iter()
                .filter_map(|c| c.cpu)
                .map(|t| t.as_secs_f64())
                .collect(),
        ),
        stolen: median_of(
            (rounds.iter().filter_map(|c| c.stolen))
                .map(|t| t.as_secs_f64())
                .collect(),
        ),
    }
}

/// Removes the ledger (with its log, shared memory and lock files) and the outbox, so that the
/// next run is a first run.
fn remove_ledger(dir: &Path, ledger: &Path, outbox: &Path) -> Result<(), String> {
    let names = [ledger, outbox].map(|path| path.file_name().unwrap_or_default().to_string_lossy());
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if names.iter().any(|ours| name.starts_with(&**ours)) {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Runs `command` to the end with its output in files, timing it from spawn to exit, after
/// reading `input` once so that it comes from the page cache (see [`child::warm`]).
fn run_child(
    mut command: Command,
    input: &Path,
    out: &Path,
    err: &Path,
    name: &str,
) -> Result<Child, String> {
    let file = |path: &Path| File::create(path).map_err(|e| format!("{}: {e}", path.display()));
    command
        .stdin(Stdio::null())
        .stdout(file(out)?)
        .stderr(file(err)?);
    child::settle_disk();
    child::warm(input)?;
    let stolen_before = child::stolen();
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start steprule {name}: {e}"))?;
    let child::Waited {
        code,
        peak_rss,
        cpu,
    } = child::wait_used(child)?;
    let wall = started.elapsed();
    let stolen =
        (child::stolen().zip(stolen_before)).map(|(after, before)| after.saturating_sub(before));
    if code != Some(0) {
        let stderr = std::fs::read_to_string(err).unwrap_or_default();
        return Err(format!(
            "steprule {name} exited with {code:?}:\n{}",
            tail(&stderr, 20)
        ));
    }
    Ok(Child {
        wall,
        peak_rss,
        cpu,
        stolen,
    })
}

/// The closing summary line a run writes to stderr (`due …, sent …, …`).
fn summary_line(err: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(err).map_err(|e| format!("{}: {e}", err.display()))?;
    text.lines()
        .rev()
        .find(|line| line.starts_with("due "))
        .map(str::to_owned)
        .ok_or_else(|| format!("no summary line from steprule run:\n{}", tail(&text, 20)))
}

/// Read a block at a time: the bench's own resident set must stay small, as a child started
/// from it reports the bench's peak in its own `ru_maxrss` (Linux counts the memory the child
/// shared before it ran steprule), and a million patients' outbox is 216 MB.
fn count_lines(path: &Path) -> Result<u64, String> {
    use std::io::Read;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(fail)?;
    let mut block = vec![0u8; 1 << 20];
    let mut lines = 0;
    loop {
        match file.read(&mut block) {
            Ok(0) => return Ok(lines),
            Ok(read) => lines += block[..read].iter().filter(|&&b| b == b'\n').count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Wall times, ratios and peak RSS per size, each ratio beside its target; true when all are
/// met.
fn print_table(sizes: &[Size]) -> bool {
    println!();
    println!(
        "| patients | plan | first run | rerun | first run / plan (≤ {TARGET_FIRST_RUN}) | rerun / plan (≤ {TARGET_RERUN}) | rounds' ratios, lowest–highest | peak RSS plan / first run / rerun (< {}) |",
        megabytes(Some(TARGET_RSS_BYTES))
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
    let mut ok = true;
    for size in sizes {
        let plan = size.plan.wall.as_secs_f64();
        let first = median(size.first_ratios.clone());
        let rerun = median(size.rerun_ratios.clone());
        let children = [&size.plan, &size.first_run, &size.rerun];
        let rss_ok = children
            .iter()
            .all(|c| c.peak_rss.is_none_or(|rss| rss < TARGET_RSS_BYTES));
        let rss: Vec<String> = children.iter().map(|c| megabytes(c.peak_rss)).collect();
        // The ratio targets are set for a clinic group's size (1,000,000 patients); a smaller
        // run shows its ratios, where fixed costs (checking the rules, opening the ledger)
        // weigh more, without judging them.
        let judged = size.patients >= TARGET_SIZE;
        let judge = |met: bool| if judged { verdict(met) } else { "(not judged)" };
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {first:.2}× {} | {rerun:.2}× {} | {} and {} | {} {} |",
            thousands(size.patients),
            plan,
            size.first_run.wall.as_secs_f64(),
            size.rerun.wall.as_secs_f64(),
            judge(first <= TARGET_FIRST_RUN),
            judge(rerun <= TARGET_RERUN),
            figures::range(&size.first_ratios),
            figures::range(&size.rerun_ratios),
            rss.join(" / "),
            verdict(rss_ok),
        );
        ok &= (!judged || (first <= TARGET_FIRST_RUN && rerun <= TARGET_RERUN)) && rss_ok;
    }
    ok
}

/// A CPU time as the bench prints it, `2.31 s` ("n/a" where the platform gives none).
fn cpu_seconds(time: Option<Duration>) -> String {
    match time {
        Some(time) => format!("{:.2} s", time.as_secs_f64()),
        None => "n/a".into(),
    }
}

/// CPU time (user and system, all threads) per child, its ratios to `plan`'s and the first
/// run's CPU time beyond `plan`'s per send, beside the time the hypervisor took from this
/// machine while each ran. Not judged: the targets are wall times, which is what a clinic
/// waits for. Shown because on a shared two-core machine the wall times also hold what was
/// stolen and what was left idle, and a change to steprule moves the CPU time alone.
fn print_cpu_table(sizes: &[Size]) {
    let seconds = cpu_seconds;
    let ratio = |ratios: &[f64]| {
        if ratios.is_empty() {
            "n/a".to_owned()
        } else {
            format!(
                "{:.2}× ({})",
                median(ratios.to_vec()),
                figures::range(ratios)
            )
        }
    };
    println!();
    println!(
        "CPU time (user + system, all threads; medians, not judged) and time stolen by the \
         hypervisor while each ran:"
    );
    let per_send = |micros: &[f64]| {
        if micros.is_empty() {
            "n/a".to_owned()
        } else {
            let (low, high) = figures::bounds(micros);
            format!("{:.1} µs ({low:.1}–{high:.1})", median(micros.to_vec()))
        }
    };
    println!(
        "| patients | plan | first run | rerun | first run / plan (rounds) | rerun / plan (rounds) | first run beyond plan, a send (rounds) | stolen: plan / first run / rerun |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for size in sizes {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            thousands(size.patients),
            seconds(size.plan.cpu),
            seconds(size.first_run.cpu),
            seconds(size.rerun.cpu),
            ratio(&size.first_cpu_ratios),
            ratio(&size.rerun_cpu_ratios),
            per_send(&size.first_cpu_per_send),
            seconds(size.plan.stolen),
            seconds(size.first_run.stolen),
            seconds(size.rerun.stolen),
        );
    }
}

/// Time per patient at the largest size over the smallest, per child: flat means linear.
fn print_growth(sizes: &[Size]) -> bool {
    let (Some(small), Some(large)) = (
        sizes.iter().min_by_key(|s| s.patients),
        sizes.iter().max_by_key(|s| s.patients),
    ) else {
        return true;
    };
    if small.patients == large.patients {
        println!("\n(one size only: no per-patient growth to report)");
        return true;
    }
    println!(
        "\ntime per patient, {} vs {} patients (target ≤ {TARGET_PER_PATIENT_GROWTH}):",
        thousands(large.patients),
        thousands(small.patients)
    );
    let mut ok = true;
    let pairs = [
        ("plan", &small.plan, &large.plan),
        ("first run", &small.first_run, &large.first_run),
        ("rerun", &small.rerun, &large.rerun),
    ];
    for (name, small_child, large_child) in pairs {
        let per_patient =
            |child: &Child, patients: u64| child.wall.as_secs_f64() * 1e6 / patients as f64;
        let (a, b) = (
            per_patient(small_child, small.patients),
            per_patient(large_child, large.patients),
        );
        let growth = b / a;
        println!(
            "  {name:<9} {a:.2} µs → {b:.2} µs per patient: {growth:.2}× {}",
            verdict(growth <= TARGET_PER_PATIENT_GROWTH)
        );
        ok &= growth <= TARGET_PER_PATIENT_GROWTH;
    }
    ok
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
