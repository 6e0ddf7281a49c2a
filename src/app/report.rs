//! `steprule report`: the rules (for their steps, stages and time zone) and the ledger (for
//! what was sent and what patients did) become the period's KPIs, as a table or JSON, on stdout
//! or in `--out`.

use std::path::PathBuf;

use super::{load_rules, AppError, Io, Outcome, RulesSource};
use crate::ledger::{EventKind, Ledger};
use crate::report::{self, Windows};

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
    let ledger = Ledger::open_existing(&request.ledger)?;
    // `booked` when the rules watch a booking field (or bookings were seen before they
    // stopped): else nothing can be booked, and clicks are the measure.
    let metric = match request.metric {
        Some(metric) => metric,
        None if !rules.observed.bookings.is_empty() => Metric::Booked,
        None if ledger.has_events(EventKind::Booked)? => Metric::Booked,
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
    let report = report::gather(&ledger, &rules, periods, &windows, metric, request.mde)?;
    let text = report::render(&report, request.format).map_err(std::io::Error::from)?;
    match &request.out {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            AppError::Usage(format!(
                "cannot write the report to {}: {e}",
                crate::printable::printable(&path.display().to_string())
            ))
        })?,
        None => io.out.write_all(text.as_bytes())?,
    }
    Ok(Outcome::Ok)
}
