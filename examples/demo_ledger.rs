//! Writes a demo ledger for a rule file, so that `steprule report` has something realistic to
//! show on a fresh machine: seven months (to today) of sends of the file's steps to about
//! 6,000 generated patients, and the clicks, blocks, bookings and visits that followed; and,
//! as if `run --custom-aggregation` had named the pushes and `steprule insights fetch` had
//! asked LINE, made-up opens per aggregation unit and half-month (withheld below 20, as LINE
//! does) and the account's friends per day.
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use steprule::ledger::{FollowerFigures, FollowerStatus, Ledger, UnitFigures, UnitUse};

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
    let units = write_insight_figures(&path, spec.end)?;
    eprintln!(
        "{} sends and {} events for {} patients; LINE figures for {units} units",
        written.sends, written.events, written.patients
    );
    Ok(path)
}

/// LINE's day (Japan time, UTC+9) of an instant, and the first day of its half-month.
fn line_day(at: DateTime<Utc>) -> NaiveDate {
    (at + Duration::hours(9)).date_naive()
}

fn half_first(day: NaiveDate) -> NaiveDate {
    day.with_day(if day.day() <= 15 { 1 } else { 16 })
        .unwrap_or(day)
}

/// Records the units the demo's LINE sends would have carried (per arm and half-month), with
/// made-up opens (55–84% of the sends, by step) and the account's friends per day, as the
/// fetch stores them; returns how many units.
fn write_insight_figures(path: &Path, end: DateTime<Utc>) -> Result<usize, String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    // (step, variant, half-month) → (first day, last day, sends)
    type Arm = (String, Option<String>, NaiveDate);
    let mut uses: BTreeMap<Arm, (NaiveDate, NaiveDate, u64)> = BTreeMap::new();
    {
        let conn = rusqlite::Connection::open(path).map_err(|e| failed(&e))?;
        let mut select = conn
            .prepare(
                "SELECT step, variant, sent_at FROM sends WHERE sink = 'line' AND status = 'sent'",
            )
            .map_err(|e| failed(&e))?;
        let mut rows = select.query([]).map_err(|e| failed(&e))?;
        while let Some(row) = rows.next().map_err(|e| failed(&e))? {
            let step: String = row.get(0).map_err(|e| failed(&e))?;
            let variant: Option<String> = row.get(1).map_err(|e| failed(&e))?;
            // Seconds since the epoch (ledger version 15).
            let sent_at: i64 = row.get(2).map_err(|e| failed(&e))?;
            let Some(at) = DateTime::from_timestamp(sent_at, 0) else {
                continue;
            };
            let day = line_day(at);
            let entry = uses
                .entry((step, variant, half_first(day)))
                .or_insert((day, day, 0));
            entry.0 = entry.0.min(day);
            entry.1 = entry.1.max(day);
            entry.2 += 1;
        }
    }
    let mut ledger = Ledger::open(path).map_err(|e| failed(&e))?;
    let uses: Vec<UnitUse> = uses
        .into_iter()
        .map(|((step, variant, half), (first, last, sends))| UnitUse {
            unit: steprule::unit_name(&step, variant.as_deref()),
            half_first: half,
            step,
            variant,
            first_day: first,
            last_day: last,
            sends,
        })
        .collect();
    ledger.record_unit_uses(&uses).map_err(|e| failed(&e))?;
    let today = line_day(end);
    let withheld = |n: u64| (n >= 20).then_some(n);
    for used in &uses {
        // A step's own open rate, 55–84%, the same on every run.
        let rate = 0.55 + (used.unit.bytes().map(u64::from).sum::<u64>() % 30) as f64 / 100.0;
        let opened = (used.sends as f64 * rate).round() as u64;
        let half_last = if used.half_first.day() == 1 {
            used.half_first.with_day(15).unwrap_or(used.half_first)
        } else {
            let next = used.half_first + Duration::days(20);
            next.with_day(1).unwrap_or(next) - Duration::days(1)
        };
        let last_day = half_last.min(today - Duration::days(1));
        let figures = UnitFigures {
            unique_impression: withheld(opened),
            unique_click: withheld(opened / 5),
            unique_media_played: None,
            unique_media_played_100: None,
        };
        let settled = today > half_last + Duration::days(14);
        ledger
            .store_unit_figures(
                &used.unit,
                used.half_first,
                last_day,
                &figures,
                end,
                settled,
            )
            .map_err(|e| failed(&e))?;
    }
    // The account's friends: growing by a few a day, with a slow trickle of blocks.
    let first = today - Duration::days(7 * 31);
    for (n, day) in first.iter_days().take_while(|d| *d < today).enumerate() {
        let n = n as u64;
        let followers = 4_200 + n * 3;
        let figures = FollowerFigures {
            status: FollowerStatus::Ready,
            followers: Some(followers),
            targeted_reaches: Some(followers * 92 / 100),
            blocks: Some(310 + n / 4),
        };
        ledger
            .store_followers(day, &figures, end)
            .map_err(|e| failed(&e))?;
    }
    Ok(uses.len())
}
