//! `steprule run FOLDER`: one worker serving a folder of clinics in turn. Each clinic is a
//! subfolder holding one rules file (`*.step`, its templates in `templates/` beside it as
//! usual) and its export, `patients.csv` (or `patients.jsonl`).
//!
//! On a PostgreSQL ledger every clinic's rows are keyed by its clinic name (the rules' `clinic`,
//! else the rules file's name, as for a single `run`), so two clinics of one name would share
//! rows: that is refused before anything is sent. On SQLite each clinic keeps its own ledger
//! and outbox in `.steprule/` beside its rules, where `steprule run` of that clinic alone keeps
//! them too; one file for several clinics (`--ledger PATH`) is refused.
//!
//! A clinic that cannot run (rules with errors, no export, an export that cannot be read, its
//! ledger refusing it) is reported under its name and the others still run; the exit code is
//! then 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ledger::clinic_of;
use super::{compile, in_passes, line_client, now_in, paths, Cycle, RunRequest};
use crate::app::{AppError, Io, Outcome};
use crate::ledger::LedgerLocation;
use crate::plan::TimingPlan;
use crate::printable::printable;

/// The export a clinic's folder holds, in the order looked for.
const EXPORTS: [&str; 2] = ["patients.csv", "patients.jsonl"];

/// Clinic folders a worker takes at most: a bound on what one process holds in memory.
const MAX_CLINICS: usize = 10_000;
/// Rules files in one clinic folder counted, at most, to say how many there are.
const MOST_RULES_NAMED: usize = 100;

/// One clinic of the folder, ready to run.
struct Clinic {
    name: String,
    request: RunRequest,
    plan: TimingPlan,
}

/// Runs every clinic in `request.rules.file` (a folder), in turn, once or on every `--every`.
pub(super) fn run_folder(request: &RunRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let folder = request.rules.file.clone();
    refuse_single_clinic_options(request, &folder)?;
    let folders = clinic_folders(&folder)?;
    let mut clinics: Vec<Clinic> = Vec::new();
    for dir in &folders {
        match load_clinic(request, dir, io) {
            Ok(clinic) => clinics.push(clinic),
            Err(error) => report(io, dir, &error)?,
        }
    }
    let unloaded = folders.len() - clinics.len();
    refuse_shared_names(&clinics)?;
    let line = line_client(request)?;
    in_passes(request, io, |runtime, stop, io| {
        let mut outcome = Outcome::Ok;
        let mut failed = unloaded;
        for clinic in &clinics {
            if *stop.borrow() {
                break;
            }
            writeln!(io.err, "clinic {}:", printable(&clinic.name))?;
            let (ledger_path, outbox_path) = paths(&clinic.request);
            let cycle = Cycle {
                request: &clinic.request,
                plan: &clinic.plan,
                line: line.as_ref(),
                ledger_path: &ledger_path,
                outbox_path: &outbox_path,
                runtime,
                stop: stop.clone(),
            };
            let ran = now_in(&clinic.request, &clinic.plan).and_then(|now| cycle.run(now, io));
            match ran {
                Ok(summary) => outcome = outcome.max(summary.outcome()),
                // This clinic's pass failed (its export, its ledger): the others still run.
                Err(error) => {
                    writeln!(
                        io.err,
                        "error: clinic {}: {}",
                        printable(&clinic.name),
                        crate::printable_lines(&error.to_string())
                    )?;
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            writeln!(
                io.err,
                "{failed} of {} clinic(s) could not run: see the errors above",
                folders.len()
            )?;
            outcome = Outcome::Unfinished;
        }
        Ok(outcome)
    })
}

/// A single clinic's ledger file, outbox and export do not fit a folder of clinics.
fn refuse_single_clinic_options(request: &RunRequest, folder: &Path) -> Result<(), AppError> {
    let shown = folder.display();
    if let Some(LedgerLocation::File(_)) = request.ledger.as_deref().map(LedgerLocation::of) {
        return Err(AppError::Usage(format!(
            "{shown} is a folder of clinics: an SQLite ledger holds one clinic, so each keeps \
             its own in .steprule/ beside its rules; leave out --ledger, or give a \
             postgres:// URL that all the clinics share"
        )));
    }
    if request.outbox.is_some() {
        return Err(AppError::Usage(format!(
            "{shown} is a folder of clinics: each writes its own outbox in .steprule/ beside \
             its rules; leave out --outbox"
        )));
    }
    Ok(())
}

/// The folder's subfolders, by name (hidden ones, like `.steprule`, left out).
fn clinic_folders(folder: &Path) -> Result<Vec<PathBuf>, AppError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type()?.is_dir() {
            dirs.push(entry.path());
            if dirs.len() > MAX_CLINICS {
                return Err(AppError::Usage(format!(
                    "{} holds more than {MAX_CLINICS} clinic folders: split them among workers",
                    folder.display()
                )));
            }
        }
    }
    dirs.sort();
    if dirs.is_empty() {
        return Err(AppError::Usage(format!(
            "{} is a folder but holds no clinic folders (one per clinic, each with its rules \
             file and patients.csv)",
            folder.display()
        )));
    }
    Ok(dirs)
}

/// The clinic in `dir`: its one rules file, checked and compiled, and its export.
fn load_clinic(request: &RunRequest, dir: &Path, io: &mut Io<'_>) -> Result<Clinic, AppError> {
    // Two are already one too many: a folder of a million files is not collected.
    let mut rules: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "step"))
        .take(MOST_RULES_NAMED)
        .collect();
    rules.sort();
    let rules = match &rules[..] {
        [one] => one.clone(),
        [] => return Err(AppError::Usage("no rules file (*.step) in it".into())),
        several => {
            let count = match several.len() {
                MOST_RULES_NAMED => format!("at least {MOST_RULES_NAMED}"),
                n => n.to_string(),
            };
            return Err(AppError::Usage(format!(
                "{count} rules files in it, where one clinic has one"
            )));
        }
    };
    let Some(export) = EXPORTS
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
    else {
        return Err(AppError::Usage(format!(
            "no export in it ({})",
            EXPORTS.join(" or ")
        )));
    };
    let mut clinic = request.clone();
    clinic.rules.file = rules;
    clinic.patients.file = export;
    clinic.patients.database = None;
    let plan = compile(&clinic, io)?;
    Ok(Clinic {
        name: clinic_of(&plan, &clinic),
        request: clinic,
        plan,
    })
}

/// Two clinics of one name would read and write each other's rows: refused before any runs.
fn refuse_shared_names(clinics: &[Clinic]) -> Result<(), AppError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for clinic in clinics {
        let rules = clinic.request.rules.file.as_path();
        if let Some(first) = seen.insert(&clinic.name, rules) {
            return Err(AppError::Usage(format!(
                "two clinics are named {}: {} and {}; give each rules file its own `clinic` \
                 name (the ledger keys every row by it). Nothing was sent",
                printable(&clinic.name),
                first.display(),
                rules.display()
            )));
        }
    }
    Ok(())
}

fn report(io: &mut Io<'_>, dir: &Path, error: &AppError) -> Result<(), AppError> {
    writeln!(
        io.err,
        "error: clinic folder {}: {}; the other clinics still run",
        dir.display(),
        crate::printable_lines(&error.to_string())
    )?;
    Ok(())
}
