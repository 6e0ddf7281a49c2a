//! `steprule status`: what the ledger says, without opening SQLite: how many sends are in each
//! state per step and sink, the latest that did not go out and why, and everything one patient
//! was sent and their LINE state — "did this patient get it, and if not, why?". With the rules
//! and the export, also the patients whose export names another LINE user than their link.

mod line;
mod postgres;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::recipients::Links;
use super::{AppError, Io, Outcome, PatientSource, RulesSource};
use crate::ledger::postgres::PgLedger;
use crate::ledger::{
    Ledger, LedgerLocation, PatientSend, Problem, SendStatus, SinkKind, StepCounts,
};
use crate::printable::printable;
use line::{ExportCheck, LineJson};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Clone)]
pub struct StatusRequest {
    pub ledger: PathBuf,
    pub format: StatusFormat,
    /// Show every send to this patient.
    pub patient: Option<String>,
    /// How many of the latest problems to show.
    pub limit: usize,
    /// The rules the export is read with (its time zone, stages and fields).
    pub rules: Option<RulesSource>,
    /// The export, to compare its LINE ids with the ledger's links.
    pub patients: Option<PatientSource>,
    /// On a PostgreSQL ledger, whose rows to read (else the rules', else the only clinic's).
    pub clinic: Option<String>,
}

/// What `status --format json` prints: one object.
#[derive(Debug, Serialize)]
struct StatusJson {
    ledger: String,
    /// On a PostgreSQL ledger: the clinic whose rows these are.
    #[serde(skip_serializing_if = "Option::is_none")]
    clinic: Option<String>,
    /// On a PostgreSQL ledger: the open sends live workers hold under their leases.
    #[serde(skip_serializing_if = "Option::is_none")]
    claimed: Option<Vec<ClaimedJson>>,
    totals: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    steps: Vec<StepJson>,
    problems: Vec<ProblemJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<Vec<SendJson>>,
    /// With `--patient`: their LINE state.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<LineJson>,
    /// With `--patients`: how many patients' export line_user_id differs from their link.
    #[serde(skip_serializing_if = "Option::is_none")]
    conflicts: Option<u64>,
    #[serde(skip)]
    export: Option<ExportCheck>,
}

#[derive(Debug, Serialize)]
struct ClaimedJson {
    worker: String,
    sends: u64,
    lease_until: String,
}

#[derive(Debug, Serialize)]
struct StepJson {
    step: String,
    sink: &'static str,
    counts: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
struct ProblemJson {
    patient: String,
    step: String,
    sink: &'static str,
    status: &'static str,
    due_at: Option<String>,
    at: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct SendJson {
    step: String,
    sink: &'static str,
    status: &'static str,
    occurrence: Option<String>,
    due_at: Option<String>,
    sent_at: Option<String>,
    attempts: u32,
    reason: Option<String>,
    note: Option<String>,
}

pub fn run(request: &StatusRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let status = gather(request, io)?;
    match request.format {
        StatusFormat::Json => {
            serde_json::to_writer(&mut *io.out, &status).map_err(std::io::Error::from)?;
            writeln!(io.out)?;
        }
        StatusFormat::Table => write_table(&status, io)?,
    }
    Ok(Outcome::Ok)
}

fn gather(request: &StatusRequest, io: &mut Io<'_>) -> Result<StatusJson, AppError> {
    if let LedgerLocation::Postgres(url) = LedgerLocation::of(&request.ledger) {
        return gather_postgres(request, &url, io);
    }
    let ledger = Ledger::open_existing(&request.ledger)?;
    let export = match (&request.rules, &request.patients) {
        (Some(rules), Some(patients)) => {
            let links = Links::load(&ledger)?;
            let patient = request.patient.as_deref();
            Some(line::check_export(rules, patients, &links, patient, io)?)
        }
        (None, Some(_)) => {
            return Err(AppError::Usage(
                "--patients needs the RULES file too: the export is read with the rules' time \
                 zone, stages and fields (steprule status RULES --patients FILE)"
                    .into(),
            ))
        }
        _ => None,
    };
    let (totals, steps) = tally(ledger.step_counts()?);
    let problems = ledger
        .latest_problems(request.limit)?
        .into_iter()
        .map(problem_json)
        .collect();
    let (patient, line) = match &request.patient {
        Some(id) => (
            Some(ledger.sends_to(id)?.into_iter().map(send_json).collect()),
            Some(line::line_json(&ledger, id, export.as_ref())?),
        ),
        None => (None, None),
    };
    Ok(StatusJson {
        ledger: ledger.path().display().to_string(),
        clinic: None,
        claimed: None,
        totals,
        steps,
        problems,
        patient,
        line,
        conflicts: export.as_ref().map(|e| e.conflicts),
        export,
    })
}

/// [`gather`] on PostgreSQL: one clinic's rows, and what live workers hold.
fn gather_postgres(
    request: &StatusRequest,
    url: &str,
    io: &mut Io<'_>,
) -> Result<StatusJson, AppError> {
    if let (None, Some(_)) = (&request.rules, &request.patients) {
        return Err(AppError::Usage(
            "--patients needs the RULES file too: the export is read with the rules' time \
             zone, stages and fields (steprule status RULES --patients FILE)"
                .into(),
        ));
    }
    let clinic = match (&request.clinic, &request.rules) {
        (Some(clinic), _) => Some(clinic.clone()),
        (None, Some(rules)) => {
            let rules = super::load_rules(rules, io)?;
            let plan = crate::plan::TimingPlan::compile(&rules);
            Some(plan.clinic.clone().unwrap_or_else(|| {
                (request.rules.as_ref())
                    .and_then(|r| r.file.file_stem())
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }))
        }
        (None, None) => None,
    };
    let mut sends = postgres::PgSends::open(url, clinic)?;
    let (totals, steps) = tally(sends.step_counts()?);
    let problems = (sends.latest_problems(request.limit)?.into_iter())
        .map(problem_json)
        .collect();
    let patient = match &request.patient {
        Some(id) => Some(sends.sends_to(id)?.into_iter().map(send_json).collect()),
        None => None,
    };
    // The LINE side (links, blocks) only when asked for: it is another connection.
    let (line, export) = match (&request.patient, &request.rules, &request.patients) {
        (None, _, None) => (None, None),
        (asked, rules, patients) => {
            let ledger = PgLedger::open_to_read(url, &sends.clinic)?;
            let export = match (rules, patients) {
                (Some(rules), Some(patients)) => {
                    let links = Links::load(&ledger)?;
                    Some(line::check_export(
                        rules,
                        patients,
                        &links,
                        asked.as_deref(),
                        io,
                    )?)
                }
                _ => None,
            };
            let line = match asked {
                Some(id) => Some(line::line_json(&ledger, id, export.as_ref())?),
                None => None,
            };
            (line, export)
        }
    };
    let claimed = (sends.claimed()?.into_iter())
        .map(|(worker, sends, until)| ClaimedJson {
            worker,
            sends,
            lease_until: crate::ledger::stamp(until),
        })
        .collect();
    Ok(StatusJson {
        ledger: sends.shown.clone(),
        clinic: Some(sends.clinic.clone()),
        claimed: Some(claimed),
        totals,
        steps,
        problems,
        patient,
        line,
        conflicts: export.as_ref().map(|e| e.conflicts),
        export,
    })
}

type Totals = BTreeMap<&'static str, BTreeMap<&'static str, u64>>;

/// Counts per sink and status, and per step (`counts` ordered by sink, then step).
fn tally(counts: Vec<StepCounts>) -> (Totals, Vec<StepJson>) {
    let mut totals: Totals = BTreeMap::new();
    let mut steps: Vec<StepJson> = Vec::new();
    for counts in counts {
        let sink = counts.sink.as_str();
        *totals
            .entry(sink)
            .or_default()
            .entry(counts.status.as_str())
            .or_default() += counts.count;
        match steps.last_mut() {
            Some(last) if last.step == counts.step && last.sink == sink => {
                last.counts.insert(counts.status.as_str(), counts.count);
            }
            _ => steps.push(StepJson {
                step: counts.step,
                sink,
                counts: BTreeMap::from([(counts.status.as_str(), counts.count)]),
            }),
        }
    }
    (totals, steps)
}

fn stamp(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(crate::ledger::stamp)
}

fn problem_json(problem: Problem) -> ProblemJson {
    ProblemJson {
        patient: problem.patient,
        step: problem.step,
        sink: problem.sink.as_str(),
        status: problem.status.as_str(),
        due_at: stamp(problem.due_at),
        at: stamp(problem.updated_at),
        reason: problem.reason,
    }
}

fn send_json(send: PatientSend) -> SendJson {
    SendJson {
        step: send.step,
        sink: send.sink.as_str(),
        status: send.status.as_str(),
        occurrence: stamp(send.occurrence),
        due_at: stamp(send.due_at),
        sent_at: stamp(send.sent_at),
        attempts: send.attempts,
        reason: send.reason,
        note: send.note,
    }
}

/// The statuses as table columns, in the order a send moves through them.
const COLUMNS: [SendStatus; 7] = [
    SendStatus::Sent,
    SendStatus::Pending,
    SendStatus::Held,
    SendStatus::Blocked,
    SendStatus::Failed,
    SendStatus::Expired,
    SendStatus::Skipped,
];

fn write_table(status: &StatusJson, io: &mut Io<'_>) -> std::io::Result<()> {
    let out = &mut *io.out;
    writeln!(out, "ledger {} (times in UTC)", printable(&status.ledger))?;
    if let Some(clinic) = &status.clinic {
        writeln!(out, "clinic {}", printable(clinic))?;
    }
    if status.steps.is_empty() {
        writeln!(out, "no sends recorded yet")?;
    }
    let width = status
        .steps
        .iter()
        .map(|s| s.step.chars().count())
        .max()
        .unwrap_or(0)
        .max("total".len());
    write!(out, "\n{:width$}  {:6}", "step", "sink")?;
    for column in COLUMNS {
        write!(out, "  {:>8}", column.as_str())?;
    }
    writeln!(out)?;
    let row = |out: &mut dyn std::io::Write,
               step: &str,
               sink: &str,
               counts: &BTreeMap<&'static str, u64>|
     -> std::io::Result<()> {
        write!(out, "{:width$}  {sink:6}", printable(step))?;
        for column in COLUMNS {
            write!(
                out,
                "  {:>8}",
                counts.get(column.as_str()).copied().unwrap_or(0)
            )?;
        }
        writeln!(out)
    };
    for step in &status.steps {
        row(out, &step.step, step.sink, &step.counts)?;
    }
    for (sink, counts) in &status.totals {
        row(out, "total", sink, counts)?;
    }
    if status.totals.contains_key(SinkKind::Outbox.as_str()) {
        writeln!(
            out,
            "\noutbox sends were written to a file, not delivered through LINE"
        )?;
    }
    if let Some(claimed) = status.claimed.as_ref().filter(|c| !c.is_empty()) {
        writeln!(
            out,
            "\nopen sends held by live workers (their lease runs out at):"
        )?;
        for worker in claimed {
            writeln!(
                out,
                "  {}  {}  until {}",
                printable(&worker.worker),
                worker.sends,
                worker.lease_until
            )?;
        }
    }
    if let Some(export) = &status.export {
        line::write_conflicts(export, out)?;
    }
    if !status.problems.is_empty() {
        writeln!(out, "\nlatest sends that did not go out (newest first):")?;
        for problem in &status.problems {
            writeln!(
                out,
                "  {}  {:7}  {}  {}  {}",
                problem.at.as_deref().unwrap_or("-"),
                problem.status,
                printable(&problem.step),
                printable(&problem.patient),
                printable(problem.reason.as_deref().unwrap_or("-"))
            )?;
        }
    }
    if let Some(sends) = &status.patient {
        writeln!(out, "\nsends to this patient ({}):", sends.len())?;
        for send in sends {
            let when = send
                .sent_at
                .as_deref()
                .or(send.due_at.as_deref())
                .unwrap_or("-");
            write!(
                out,
                "  {when}  {:7}  {}  via {}",
                send.status,
                printable(&send.step),
                send.sink
            )?;
            if let Some(reason) = &send.reason {
                write!(out, "  {}", printable(reason))?;
            }
            writeln!(out)?;
        }
    }
    if let Some(line) = &status.line {
        line::write_line(line, out)?;
    }
    Ok(())
}
