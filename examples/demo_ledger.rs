//! Writes a demo ledger for a rule file, so that `steprule report` has something realistic to
//! show on a fresh machine: seven months (to today) of sends of the file's steps to about
//! 6,000 generated patients, and the clicks, blocks, bookings and visits that followed.
//!
//! ```sh
//! cargo run --example demo_ledger -- rules/clinic.step
//! steprule report rules/clinic.step --ledger rules/.steprule/demo-ledger.db
//! ```
//!
//! The ledger goes to `.steprule/demo-ledger.db` beside the rules (replaced if it is there),
//! never to the real `ledger.db`. Patients are `P00000000`…; nothing in it is a real person.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a demo tool: a failure ends it with a message

#[path = "../benches/support/ledger_gen.rs"]
mod ledger_gen;

use std::path::PathBuf;
use std::process::ExitCode;

use ledger_gen::{Spec, StepSpec};

fn main() -> ExitCode {
    let rules = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "rules/clinic.step".into()),
    );
    match write(&rules) {
        Ok(path) => {
            println!(
                "wrote {}\nsee it with: steprule report {} --ledger {}",
                path.display(),
                rules.display(),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write(rules: &std::path::Path) -> Result<PathBuf, String> {
    let outcome = steprule::check_path(rules, None)
        .map_err(|e| format!("cannot read {}: {e}", rules.display()))?;
    let rules_set = outcome
        .rules
        .ok_or_else(|| format!("{} has errors; run `steprule check` on it", rules.display()))?;
    let steps = StepSpec::of(&rules_set);
    let dir = rules
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join(".steprule");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("demo-ledger.db");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    let spec = Spec {
        sends: 50_000,
        sends_per_patient: 8,
        events_per_send: 0.25,
        months: 7,
        end: chrono::Utc::now(),
        seed: 7,
    };
    let written = ledger_gen::write_ledger(&path, &steps, &spec)?;
    eprintln!(
        "{} sends and {} events for {} patients",
        written.sends, written.events, written.patients
    );
    Ok(path)
}
