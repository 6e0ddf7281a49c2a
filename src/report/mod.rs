//! `steprule report`: the KPIs per step and arm for a period on the clinic's calendar — sent,
//! opened, clicked, booked, revisited, blocked and their rates, against the period before —
//! the arms of each A/B test, and what to change next. Reads the ledger only; `run` and `serve`
//! wrote everything it counts.

mod build;
pub mod experiment;
mod html;
mod json;
mod months;
mod opened;
pub mod period;
mod reach;
mod recommend;
pub mod stats;
mod table;
mod tally;

pub use build::{stage_of, Metric, Report};
pub use months::monthly;
pub use period::{PeriodArgs, Periods};
pub use reach::Reach;
pub use tally::Windows;

use crate::check::RuleSet;
use crate::ledger::{LedgerError, ReadLedger};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    /// One self-contained page in Japanese, with charts.
    Html,
}

/// Why a report could not be written (its data is always complete; only the writing fails).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot lay out the HTML report: {0}")]
    Html(#[from] minijinja::Error),
}

/// Reads both periods from `ledger` and builds the report for `rules`' steps, judging A/B arms
/// on `metric` for the difference `mde` (None: the observed one).
pub fn gather(
    ledger: &dyn ReadLedger,
    rules: &RuleSet,
    periods: Periods,
    windows: &Windows,
    metric: Metric,
    mde: Option<f64>,
) -> Result<Report, LedgerError> {
    let current = tally::tally(ledger, &periods.current, windows)?;
    let previous = tally::tally(ledger, &periods.previous, windows)?;
    let mut report = build::build(rules, periods, current, previous, metric, mde);
    opened::fill(ledger, &mut report)?;
    Ok(report)
}

/// The report as text in `format`, ending with a newline.
pub fn render(report: &Report, format: Format) -> Result<String, RenderError> {
    Ok(match format {
        Format::Table => table::to_table(report),
        Format::Json => json::to_json(report)? + "\n",
        Format::Html => html::to_html(report)?,
    })
}
