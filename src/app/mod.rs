//! What the commands do, between the CLI's arguments and the pipeline's stages: load and check
//! rules, read patients, evaluate, and write what the user asked for. Writes only to the
//! writers it is given; never exits.

pub mod check;
mod error;
pub mod events;
pub mod explain;
pub mod insights;
pub mod plan;
pub mod preview;
pub mod reactions;
pub mod recipients;
pub mod report;
pub mod review;
pub mod run;
pub mod serve;
mod sources;
pub mod status;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use error::{AppError, EXIT_ERROR, EXIT_RULE_ERRORS};
pub use sources::PatientsAsked;

use crate::check::RuleSet;
use crate::diagnostic;
use crate::eval::Window;
use crate::records::{self, PatientRecord, ReadOptions, RecordSchema, RowError};

/// How a command that did its work ended, for the exit code (a command that could not is an
/// [`AppError`]). Ordered by weight: a command that meets several ends with the heaviest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// Done, but some patient rows were skipped.
    RowsSkipped,
    /// Done, but some sends failed for good (LINE refused them, or they broke LINE's limits).
    SendsFailed,
    /// `preview`: the step (or every step) sends nothing to the patient; why was printed.
    NothingToPreview,
    /// `check` found errors (or warnings, with `--deny-warnings`); they were printed.
    Findings,
    /// Stopped before the end for a reason already printed (the outbox's disk is full, LINE
    /// refused the token); what was not done is left for the next run.
    Unfinished,
}

impl Outcome {
    /// Exit codes: 0 done, 1 findings in the rules, 2 could not finish, 3 rows skipped, 4 sends
    /// failed, 5 nothing to preview.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Findings => EXIT_RULE_ERRORS,
            Outcome::Unfinished => EXIT_ERROR,
            Outcome::RowsSkipped => 3,
            Outcome::SendsFailed => 4,
            Outcome::NothingToPreview => 5,
        }
    }
}

/// Where rules and their templates are.
#[derive(Debug, Clone)]
pub struct RulesSource {
    pub file: PathBuf,
    pub templates: Option<PathBuf>,
}

/// Where patients are and how to read them.
#[derive(Debug, Clone, Default)]
pub struct PatientSource {
    /// The export; for a database, its URL without the password (what messages call it).
    pub file: PathBuf,
    /// A reservation system's database to read instead of a file.
    pub database: Option<records::Database>,
    pub options: ReadOptions,
}

/// Output streams and whether stderr is a colour terminal.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub color: bool,
}

/// Loads and checks rules. Diagnostics are printed on `io.err` (warnings do not stop the
/// command); rules with errors are [`AppError::RuleErrors`].
pub fn load_rules(source: &RulesSource, io: &mut Io<'_>) -> Result<RuleSet, AppError> {
    load_rules_with(source, crate::check::CheckOptions::default(), io)
}

/// [`load_rules`], checking what `options` asks for too.
pub fn load_rules_with(
    source: &RulesSource,
    options: crate::check::CheckOptions,
    io: &mut Io<'_>,
) -> Result<RuleSet, AppError> {
    let outcome = crate::check::check_path_with(&source.file, source.templates.as_deref(), options)
        .map_err(|source_error| AppError::ReadRules {
            path: source.file.clone(),
            source: source_error,
        })?;
    if !outcome.diagnostics.is_empty() {
        write!(
            io.err,
            "{}",
            diagnostic::render_human(&outcome.diagnostics, io.color)
        )?;
    }
    outcome.rules.ok_or_else(|| AppError::RuleErrors {
        path: source.file.clone(),
    })
}

/// Reads patients one at a time, reporting bad rows and unreadable cells on `err` as they
/// come; `each` sees every record kept (with its unreadable fields unknown) and says whether to
/// go on. Returns the number of rows read, skipped and read with unreadable cells. The file is
/// read on threads of their own a few hundred rows ahead of `each`, in the same order and with
/// the same reports.
pub fn for_each_patient(
    source: &PatientSource,
    schema: &RecordSchema,
    err: &mut dyn Write,
    mut each: impl FnMut(&PatientRecord) -> std::io::Result<bool>,
) -> Result<RowCounts, AppError> {
    let no_work = || |_: &PatientRecord| ();
    for_each_patient_worked(source, schema, err, &no_work, |patient, ()| each(patient))
}

/// [`for_each_patient`], with each patient first worked on by `worker`'s work (one per
/// thread; evaluating, for `plan` and `run`) on the threads that type the rows, while `each`,
/// on this thread, takes each patient with what the work came to, in file order. Work made
/// for a row that turns out to be skipped (a duplicate id) is dropped unseen. A database is
/// worked on here, one row at a time, as it is read.
pub fn for_each_patient_worked<W: records::RowWork>(
    source: &PatientSource,
    schema: &RecordSchema,
    err: &mut dyn Write,
    worker: &(impl Fn() -> W + Sync),
    mut each: impl FnMut(&PatientRecord, W::Out) -> std::io::Result<bool>,
) -> Result<RowCounts, AppError> {
    for_each_worked(source, schema, err, worker, |patient, worked| {
        // Every row handed on has what the work came to; it is taken only here.
        worked
            .take()
            .map_or(Ok(true), |worked| each(patient, worked))
    })
}

/// [`for_each_patient_worked`], with what the work came to lent rather than given: left where
/// it is, it is filled again with a later row ([`records::RowWork::work_into`]) instead of
/// freed here and made anew there.
pub fn for_each_patient_lent<W: records::RowWork>(
    source: &PatientSource,
    schema: &RecordSchema,
    err: &mut dyn Write,
    worker: &(impl Fn() -> W + Sync),
    mut each: impl FnMut(&PatientRecord, &mut W::Out) -> std::io::Result<bool>,
) -> Result<RowCounts, AppError> {
    for_each_worked(source, schema, err, worker, |patient, mut worked| {
        worked
            .get()
            .map_or(Ok(true), |worked| each(patient, worked))
    })
}

fn for_each_worked<W: records::RowWork>(
    source: &PatientSource,
    schema: &RecordSchema,
    err: &mut dyn Write,
    worker: &(impl Fn() -> W + Sync),
    each: impl FnMut(&PatientRecord, records::Worked<'_, W::Out>) -> std::io::Result<bool>,
) -> Result<RowCounts, AppError> {
    match &source.database {
        // A database is already read on a thread of its own.
        Some(database) => {
            let records = records::open_database(database, schema, &source.options)?;
            report_rows(&mut records::WorkedRows::here(records, worker()), err, each)
        }
        None => records::evaluate_ahead(&source.file, schema, &source.options, worker, |rows| {
            report_rows(rows, err, each)
        })?,
    }
}

/// Hands each kept row of `rows` to `each`, with the notices, unreadable-cell reports and
/// skipped rows on `err` where they come.
fn report_rows<T>(
    rows: &mut records::WorkedRows<'_, T>,
    err: &mut dyn Write,
    mut each: impl FnMut(&PatientRecord, records::Worked<'_, T>) -> std::io::Result<bool>,
) -> Result<RowCounts, AppError> {
    let mut counts = RowCounts::default();
    // Where rows are, for the messages written while a row is lent.
    let places = rows.places();
    loop {
        for notice in rows.take_notices() {
            writeln!(
                err,
                "warning: {}: {}",
                crate::printable::printable(places.name()),
                notice
            )?;
        }
        let Some(taken) = rows.next_row() else {
            break;
        };
        // Before the patient is taken: the report of the row's unreadable cells.
        for RowError { line, message, .. } in taken.unreadable {
            counts.unreadable += 1;
            writeln!(
                err,
                "warning: {}: {}",
                crate::printable::printable(&places.of(line)),
                crate::printable::printable(&message)
            )?;
        }
        match (taken.row, taken.worked) {
            (Ok(patient), Some(worked)) => {
                counts.read += 1;
                if !each(patient, worked)? {
                    break;
                }
            }
            // Every kept row is worked on; a row without its work is not handed on.
            (Ok(_), None) => {}
            (Err(RowError { line, message, .. }), _) => {
                counts.skipped += 1;
                writeln!(
                    err,
                    "warning: {}: {} (row skipped)",
                    crate::printable::printable(&places.of(line)),
                    crate::printable::printable(&message)
                )?;
            }
        }
    }
    Ok(counts)
}

/// What evaluation had to say about steps across many patients, reported once per step after
/// the pass instead of once per patient: rhai conditions that failed (with the first patient's
/// line in the export, never their id), steps whose occurrences were cut at the evaluator's
/// bound, and steps not evaluated for patients with an unreadable cell they need (with the
/// first field).
#[derive(Debug, Default)]
pub struct StepWarnings {
    /// Per step: how many patients, the first one's line in the export, the first message.
    scripts: std::collections::BTreeMap<usize, (usize, usize, String)>,
    cut: std::collections::BTreeMap<usize, (usize, DateTime<Utc>)>,
    unreadable: std::collections::BTreeMap<usize, (usize, String)>,
}

impl StepWarnings {
    /// Notes one patient's outcome; `line` is the patient's line in the export (a log names
    /// rows by line, never by a patient's id or name).
    pub fn note(&mut self, line: usize, outcome: &crate::eval::PatientOutcome) {
        self.note_all(line, &outcome.notes);
    }

    /// The notes of `outcome` that [`Self::note`] counts, to note later on another thread
    /// (empty, and allocating nothing, for most patients).
    pub fn worth_noting(outcome: &crate::eval::PatientOutcome) -> Vec<crate::eval::StepNote> {
        let counted = |note: &&crate::eval::StepNote| {
            matches!(
                note.reason,
                crate::eval::Reason::Script(_)
                    | crate::eval::Reason::TooManyOccurrences { .. }
                    | crate::eval::Reason::Unreadable(_)
            )
        };
        outcome.notes.iter().filter(counted).cloned().collect()
    }

    /// [`Self::note`], given the notes alone.
    pub fn note_all(&mut self, line: usize, notes: &[crate::eval::StepNote]) {
        for note in notes {
            match &note.reason {
                crate::eval::Reason::Script(message) => {
                    let entry = self
                        .scripts
                        .entry(note.step)
                        .or_insert_with(|| (0, line, message.clone()));
                    entry.0 += 1;
                }
                crate::eval::Reason::TooManyOccurrences { through } => {
                    let entry = self.cut.entry(note.step).or_insert((0, *through));
                    entry.0 += 1;
                    entry.1 = entry.1.min(*through);
                }
                crate::eval::Reason::Unreadable(field) => {
                    let entry = self
                        .unreadable
                        .entry(note.step)
                        .or_insert_with(|| (0, field.clone()));
                    entry.0 += 1;
                }
                _ => {}
            }
        }
    }

    pub fn report(
        &self,
        plan: &crate::plan::TimingPlan,
        err: &mut dyn Write,
    ) -> std::io::Result<()> {
        for (step, (count, line, message)) in &self.scripts {
            writeln!(
                err,
                "warning: step `{}`: the rhai condition failed for {count} patient(s), e.g. the \
                 patient on line {line}: {}",
                plan.steps[*step].id,
                crate::printable::printable(message)
            )?;
        }
        for (step, (count, through)) in &self.cut {
            writeln!(
                err,
                "warning: step `{}`: too many occurrences in the window for {count} patient(s); \
                 only those through {} are planned (ask for a shorter window)",
                plan.steps[*step].id,
                through
                    .with_timezone(&plan.timezone)
                    .format("%Y-%m-%d %H:%M")
            )?;
        }
        for (step, (count, field)) in &self.unreadable {
            writeln!(
                err,
                "warning: step `{}`: not evaluated for {count} patient(s) with an unreadable cell \
                 it needs (e.g. {field}); nothing of it is sent to them until the export is fixed",
                plan.steps[*step].id,
            )?;
        }
        Ok(())
    }
}

/// Rows read and rows skipped from a patient file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub read: usize,
    pub skipped: usize,
    /// Rows read (and counted in `read`) with cells that could not be read.
    pub unreadable: usize,
}

impl RowCounts {
    /// Whether some patient data could not be used: rows skipped, or cells unreadable. The
    /// command then ends with [`Outcome::RowsSkipped`].
    pub fn incomplete(&self) -> bool {
        self.skipped > 0 || self.unreadable > 0
    }
}

/// `--now`, `--from`, `--to`, `--days` as typed; read in the clinic's time zone once the rules
/// say which it is.
#[derive(Debug, Clone, Default)]
pub struct WindowArgs {
    pub now: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub days: Option<u32>,
}

/// The window `plan` shows when none is given.
pub const DEFAULT_DAYS: u32 = 7;
/// The longest window `plan` shows: ten years.
pub const MAX_DAYS: u32 = 3660;

impl WindowArgs {
    /// `now` defaults to the clock, `from` to `now`, `to` to `from` + `days` (default 7).
    pub fn resolve(&self, tz: Tz) -> Result<Window, AppError> {
        self.resolve_text(tz).map_err(AppError::Usage)
    }

    fn resolve_text(&self, tz: Tz) -> Result<Window, String> {
        let parse = |flag: &str, text: &Option<String>| -> Result<Option<DateTime<Utc>>, String> {
            text.as_deref()
                .map(|t| crate::time::parse_instant(t, tz).map_err(|e| format!("--{flag}: {e}")))
                .transpose()
        };
        let now = parse("now", &self.now)?.unwrap_or_else(Utc::now);
        let from = parse("from", &self.from)?.unwrap_or(now);
        let to = match (parse("to", &self.to)?, self.days) {
            (Some(_), Some(_)) => return Err("give --to or --days, not both".into()),
            (Some(to), None) => to,
            (None, days) => {
                let days = days.unwrap_or(DEFAULT_DAYS);
                if days == 0 || days > MAX_DAYS {
                    return Err(format!("--days takes 1 to {MAX_DAYS}"));
                }
                from.checked_add_signed(chrono::Duration::days(i64::from(days)))
                    .ok_or("--from plus --days is past the end of the calendar")?
            }
        };
        if to <= from {
            return Err("the window is empty: --to must be after --from".into());
        }
        Ok(Window { now, from, to })
    }
}

/// `text` on stdout, or in `path` created `0600`: for pages that hold patient data (a preview,
/// the review sheet), which other users of the machine must not read.
fn write_private(
    path: Option<&Path>,
    what: &str,
    text: &str,
    io: &mut Io<'_>,
) -> Result<(), AppError> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = path else {
        io.out.write_all(text.as_bytes())?;
        return Ok(());
    };
    let cannot = |e: std::io::Error| {
        AppError::Usage(format!(
            "cannot write {what} to {}: {e}",
            crate::printable::printable(&path.display().to_string())
        ))
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::ledger::file::FILE_MODE)
        .open(path)
        .map_err(cannot)?;
    file.write_all(text.as_bytes()).map_err(cannot)
}
