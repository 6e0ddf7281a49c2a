//! `steprule report`: the rules (for their steps, stages and time zone) and the ledger (for
//! what was sent and what patients did) become the period's KPIs, as a table, JSON or an HTML
//! page, on stdout or in `--out`; with `--patients`, also whom each stage reaches on LINE.

use std::path::PathBuf;

use super::recipients::{Recipients, Source};
use super::{for_each_patient, load_rules, AppError, Io, Outcome, PatientSource, RulesSource};
use crate::check::RuleSet;
use crate::ledger::{EventKind, LedgerLocation, ReadLedger};
use crate::report::{self, Reach, Windows};

pub use crate::report::{Format as ReportFormat, Metric, PeriodArgs};

#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub rules: RulesSource,
    pub ledger: PathBuf,
    pub period: PeriodArgs,
    /// The instant "today" is taken from for the default period (default: the clock).
    pub now: Option<String>,
    pub format: ReportFormat,
    /// Write here instead of stdout.
    pub out: Option<PathBuf>,
    /// What the A/B arms are compared on (default: bookings when the ledger has any, else
    /// clicks).
    pub metric: Option<Metric>,
    /// The absolute difference in rate an A/B test should detect (default: the observed one).
    pub mde: Option<f64>,
    /// The patient export, read as `run` reads it, for the patients per stage and their reach.
    pub patients: Option<PatientSource>,
}

pub fn run(request: &ReportRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    if request.mde.is_some_and(|mde| !(mde > 0.0 && mde < 1.0)) {
        return Err(AppError::Usage(
            "--mde takes a difference in rate between 0 and 1, e.g. 0.02 for 2 points".into(),
        ));
    }
    let rules = load_rules(&request.rules, io)?;
    let now = match &request.now {
        Some(text) => crate::time::parse_instant(text, rules.timezone)
            .map_err(|e| AppError::Usage(format!("--now: {e}")))?,
        None => chrono::Utc::now(),
    };
    let periods = request
        .period
        .resolve(rules.timezone, now)
        .map_err(AppError::Usage)?;
    // A file, or the clinic's rows of a PostgreSQL ledger (the rules' clinic).
    let ledger = super::recipients::open_existing(
        &request.ledger,
        &request.rules.file,
        rules.clinic.as_deref(),
    )?;
    let ledger = &*ledger;
    // `booked` when the rules watch a booking field (or bookings were seen before they
    // stopped): else nothing can be booked, and clicks are the measure.
    let metric = match request.metric {
        Some(metric) => metric,
        None if !rules.observed.bookings.is_empty() => Metric::Booked,
        None if ledger.any_events(EventKind::Booked)? => Metric::Booked,
        None => Metric::Clicked,
    };
    // The rules' windows; a month counts 31 days (the settings are at most a year).
    let window = |d: crate::values::Duration| {
        chrono::Duration::minutes(i64::try_from(d.longest_minutes()).unwrap_or(i64::MAX / 60_000))
    };
    let windows = Windows {
        attribution: window(rules.observed.attribution),
        revisit: window(rules.observed.revisit),
        ..Windows::default()
    };
    let mut report = report::gather(ledger, &rules, periods, &windows, metric, request.mde)?;
    let mut outcome = Outcome::Ok;
    if let Some(patients) = &request.patients {
        let reach = reach(&rules, patients, ledger, io)?;
        if reach.skipped_rows > 0 {
            outcome = Outcome::RowsSkipped;
        }
        report.reach = Some(reach);
    }
    if request.format == ReportFormat::Html {
        // Only the page draws the trend: the table and JSON skip its four extra months.
        report.months = report::monthly(ledger, &report, &windows)?;
        // A file by its name; a URL without its password (its last segment could hold one).
        report.ledger_name = match LedgerLocation::of(&request.ledger) {
            LedgerLocation::File(path) => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            LedgerLocation::Postgres(_) => Some(ledger.describe()),
        };
    }
    let text = report::render(&report, request.format).map_err(std::io::Error::other)?;
    match &request.out {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            AppError::Usage(format!(
                "cannot write the report to {}: {e}",
                crate::printable::printable(&path.display().to_string())
            ))
        })?,
        None => io.out.write_all(text.as_bytes())?,
    }
    Ok(outcome)
}

/// Streams the export once, counting each patient in their stage: whether `run` would find a
/// LINE user for them (the export's `line_user_id`, else their latest link) and whether that
/// user blocked the account. Bad rows are reported on stderr with their line and skipped, and
/// so are patients whose stage cannot be read.
fn reach(
    rules: &RuleSet,
    patients: &PatientSource,
    ledger: &dyn ReadLedger,
    io: &mut Io<'_>,
) -> Result<Reach, AppError> {
    let recipients = Recipients::load(ledger)?;
    let schema = rules.record_schema();
    let mut reach = Reach::new(&rules.stages);
    // A patient whose stage cannot be read belongs to no stage's count: left out like a
    // skipped row (and counted with them), not put under "no stage".
    let mut stage_unknown = 0;
    let rows = for_each_patient(patients, &schema, io.err, |patient| {
        let stage = crate::fields::FieldRef::Builtin(crate::fields::Field::Stage);
        if patient.unknown.contains(stage) {
            stage_unknown += 1;
            return Ok(true);
        }
        let resolved = recipients.links.resolve(patient);
        let linked = resolved.source != Source::Unlinked;
        reach.count(patient.stage, linked, recipients.blocks(&resolved.record));
        Ok(true)
    })?;
    reach.skipped_rows = (rows.skipped + stage_unknown) as u64;
    Ok(reach)
}
