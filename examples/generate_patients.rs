//! Writes a synthetic patient export (the columns of `rules/patients.csv`) to stdout, for
//! benchmarks and load tests:
//!
//! ```sh
//! cargo run --release --example generate_patients -- \
//!     --count 1000000 --now "2026-11-25 09:00" --seed 42 > /tmp/patients.csv
//! ```
//!
//! Rows are generated and written one at a time, so any count fits in memory. The same seed
//! and `--now` give the same file. See `benches/support/synthetic.rs` for the distributions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::NaiveDateTime;
use clap::Parser;

/// Write synthetic patients as CSV to stdout.
#[derive(Parser)]
struct Args {
    /// How many patients.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// The clinic's wall-clock time the dates are relative to (`YYYY-MM-DD HH:MM`).
    #[arg(long, value_parser = parse_now, default_value = "2026-11-25 09:00")]
    now: NaiveDateTime,
    /// Seed of the generator: the same seed gives the same file.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn parse_now(text: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .map_err(|err| format!("`{text}`: {err} (expected e.g. 2026-11-25 09:00)"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut rows = synthetic::PatientCsv::new(args.count, args.now, args.seed);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match io::copy(&mut rows, &mut out).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
