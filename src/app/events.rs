//! `steprule events`: what patients did, as the ledger stored it (follows, blocks, taps, clicks,
//! links), oldest first. Streamed: a ledger with years of events is printed without holding
//! them. Never prints a LINE user id or a message's text (the ledger keeps no text at all).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{load_rules, AppError, Io, Outcome, RulesSource};
use crate::ledger::postgres::{self, PgLedger};
use crate::ledger::{EventFilter, EventKind, EventRecord, Ledger, LedgerLocation, ServeLedger};
use crate::printable::printable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsFormat {
    Table,
    Json,
}

/// The most events `--limit` may ask for: the latest N are put back in time order, so N of
/// them are held at once.
pub const MAX_LIMIT: u64 = 100_000;

#[derive(Debug, Clone)]
pub struct EventsRequest {
    /// A file, or a `postgres://` URL (then `rules` is needed: its clinic names the rows).
    pub ledger: PathBuf,
    /// The rules, for the clinic's time zone: `--since` without an offset is read in it, and
    /// times are shown in it. Without them, both are UTC.
    pub rules: Option<RulesSource>,
    pub format: EventsFormat,
    /// `--type` as typed (checked here, to suggest the type meant).
    pub kind: Option<String>,
    pub since: Option<String>,
    /// Only the latest N.
    pub limit: Option<u64>,
}

/// One event, as `--format json` prints it (one object per line).
#[derive(Debug, Serialize)]
struct EventJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    at: String,
    patient: Option<&'a str>,
    step: Option<&'a str>,
    detail: Option<&'a str>,
}

pub fn run(request: &EventsRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let kind = request.kind.as_deref().map(parse_kind).transpose()?;
    if request.limit.is_some_and(|n| n == 0 || n > MAX_LIMIT) {
        return Err(AppError::Usage(format!("--limit takes 1 to {MAX_LIMIT}")));
    }
    let rules = match &request.rules {
        Some(source) => Some((load_rules(source, io)?, &source.file)),
        None => None,
    };
    let tz = rules.as_ref().map_or(Tz::UTC, |(rules, _)| rules.timezone);
    let since = request
        .since
        .as_deref()
        .map(|text| {
            crate::time::parse_instant(text, tz)
                .map_err(|e| AppError::Usage(format!("--since: {e}")))
        })
        .transpose()?;
    let ledger: Box<dyn ServeLedger> = match LedgerLocation::of(&request.ledger) {
        LedgerLocation::File(path) => Box::new(Ledger::open_existing(&path)?),
        LedgerLocation::Postgres(url) => {
            // One database holds many clinics' events: the rules name whose.
            let Some((rules, file)) = &rules else {
                return Err(AppError::Usage(format!(
                    "the ledger {} is on PostgreSQL, which holds many clinics' events: give \
                     the rules file (steprule events RULES --ledger …), whose clinic they are",
                    postgres::shown_url(&url)
                )));
            };
            let clinic = postgres::clinic_name(rules.clinic.as_deref(), file);
            Box::new(PgLedger::open(&url, &clinic, postgres::DEFAULT_LEASE)?)
        }
    };
    let filter = EventFilter { kind, since };
    let mut printer = Printer {
        format: request.format,
        tz,
        head: Vec::new(),
        widths: None,
        count: 0,
        failed: None,
    };
    let mut each = |event: EventRecord| printer.print(event, &mut *io.out);
    match request.limit {
        Some(limit) => ledger.latest_events(&filter, limit, &mut each)?,
        None => ledger.events(&filter, &mut each)?,
    }
    printer.finish(&mut *io.out)?;
    writeln!(io.err, "{} event(s)", printer.count)?;
    Ok(Outcome::Ok)
}

/// The event type named `text`, or a usage error listing the types with the nearest one.
fn parse_kind(text: &str) -> Result<EventKind, AppError> {
    if let Some(kind) = EventKind::parse(text) {
        return Ok(kind);
    }
    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let nearest = names
        .iter()
        .map(|name| (strsim::jaro_winkler(&text.to_lowercase(), name), *name))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default();
    Err(AppError::Usage(format!(
        "--type: unknown event type `{}`{nearest}; the types are {}",
        printable(text),
        names.join(", ")
    )))
}

/// Events printed before the table's widths are known: the first ones are held to size the
/// columns, and the rest are printed as they come with those widths.
const HEAD: usize = 1000;

struct Printer {
    format: EventsFormat,
    tz: Tz,
    head: Vec<EventRecord>,
    /// The at, patient and step column widths, once the head is printed.
    widths: Option<(usize, usize, usize)>,
    count: u64,
    /// The first write error (the callback cannot return one); reading stops mattering then.
    failed: Option<std::io::Error>,
}

impl Printer {
    /// Prints `event`; after a write error (a closed pipe: `events | head`) it asks the
    /// ledger to stop reading.
    fn print(&mut self, event: EventRecord, out: &mut dyn Write) -> ControlFlow<()> {
        if self.failed.is_some() {
            return ControlFlow::Break(());
        }
        self.count += 1;
        let written = match (self.format, self.widths) {
            (EventsFormat::Json, _) => self.json(&event, out),
            (EventsFormat::Table, Some(widths)) => self.row(&event, widths, out),
            (EventsFormat::Table, None) => {
                self.head.push(event);
                if self.head.len() >= HEAD {
                    self.flush_head(out)
                } else {
                    Ok(())
                }
            }
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => {
                self.failed = Some(error);
                ControlFlow::Break(())
            }
        }
    }

    fn finish(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if self.format == EventsFormat::Table && self.widths.is_none() {
            if self.head.is_empty() {
                return writeln!(out, "no events");
            }
            self.flush_head(out)?;
        }
        Ok(())
    }

    fn time(&self, at: DateTime<Utc>, format: EventsFormat) -> String {
        let local = at.with_timezone(&self.tz);
        match format {
            EventsFormat::Json => local.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            EventsFormat::Table => local.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }

    fn json(&self, event: &EventRecord, out: &mut dyn Write) -> std::io::Result<()> {
        let json = EventJson {
            kind: event.kind.as_str(),
            at: self.time(event.at, EventsFormat::Json),
            patient: event.patient.as_deref(),
            step: event.step.as_deref(),
            detail: event.detail.as_deref(),
        };
        serde_json::to_writer(&mut *out, &json)?;
        writeln!(out)
    }

    fn flush_head(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        let width = |cell: &dyn Fn(&EventRecord) -> Option<&str>, title: &str| {
            self.head
                .iter()
                .map(|e| cell(e).map_or(1, |text| printable(text).chars().count()))
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let at = format!("at ({})", self.tz.name());
        let widths = (
            at.len().max("2026-01-01 00:00:00".len()),
            width(&|e| e.patient.as_deref(), "patient"),
            width(&|e| e.step.as_deref(), "step"),
        );
        let (at_w, patient_w, step_w) = widths;
        writeln!(
            out,
            "{at:<at_w$}  {:<12}  {:<patient_w$}  {:<step_w$}  detail",
            "type", "patient", "step"
        )?;
        for event in std::mem::take(&mut self.head) {
            self.row(&event, widths, out)?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    fn row(
        &self,
        event: &EventRecord,
        (at_w, patient_w, step_w): (usize, usize, usize),
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<at_w$}  {:<12}  {:<patient_w$}  {:<step_w$}  {}",
            self.time(event.at, EventsFormat::Table),
            event.kind.as_str(),
            cell(&event.patient),
            cell(&event.step),
            cell(&event.detail)
        )
    }
}

/// A cell from the ledger, safe for a terminal; `-` when empty.
fn cell(text: &Option<String>) -> std::borrow::Cow<'_, str> {
    text.as_deref().map_or("-".into(), printable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_type_lists_the_types_and_suggests_the_nearest() {
        let message = parse_kind("unfolow").unwrap_err().to_string();
        assert!(message.contains("(did you mean `unfollow`?)"), "{message}");
        assert!(message.contains("follow, unfollow, postback, click, link, link_failed"));
        let message = parse_kind("zzz").unwrap_err().to_string();
        assert!(!message.contains("did you mean"), "{message}");
        assert_eq!(parse_kind("link_failed").unwrap(), EventKind::LinkFailed);
    }
}
