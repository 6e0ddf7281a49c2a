//! `steprule plan`: every send in a window, in time order, with per-day totals and the
//! projected messages per month against the clinic's LINE quota. With a ledger, each send also
//! says where it goes: the export's LINE user, the patient's link, or nowhere because the
//! patient blocked the account, and whether the ledger already has the send (sent, failed,
//! skipped …), counted apart.

mod ids;
mod instants;
mod json;
mod ledger;
mod order;
mod work;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use super::recipients::{self, Recipients};
use super::{
    for_each_patient_lent, load_rules, AppError, Io, Outcome, PatientSource, RulesSource,
    StepWarnings, WindowArgs,
};
use crate::app::reactions::{PassReactions, UNREAD_REACTIONS};
use crate::eval::{StepNote, Window};
use crate::ledger::SendStatus;
use crate::month_view::{self, SendCalendar};
use crate::plan::TimingPlan;
use ids::PatientIds;
use ledger::LedgerMarks;
use order::SendTimes;
use work::PlanWork;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Table,
    Json,
    Csv,
    /// A month-at-a-glance calendar page: sends per day and step (counts only).
    Html,
}

#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    pub times: WindowArgs,
    pub format: PlanFormat,
    /// The LINE plan's monthly message quota, to warn about.
    pub quota: Option<u64>,
    /// The ledger to read links and blocks from (default: `run`'s, when it exists).
    pub ledger: Option<PathBuf>,
}

/// Where a patient's sends go, as the `recipient` column says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recipient {
    /// The export's `line_user_id`.
    Export,
    /// The patient's link in the ledger (the export has no LINE id).
    Linked,
    /// The LINE user blocked the account: the send would not be pushed.
    Blocked,
    /// Timed before the rules' `start`: `run` records it as skipped and sends nothing.
    Skipped,
}

impl Recipient {
    fn as_str(self) -> &'static str {
        match self {
            Recipient::Export => "export",
            Recipient::Linked => "linked",
            Recipient::Blocked => "blocked",
            Recipient::Skipped => "skipped",
        }
    }
}

/// One planned send, compact: a million patients' plan must fit in memory comfortably.
#[derive(Debug, Clone, Copy)]
struct Row {
    at: i64,
    patient: u32,
    step: u16,
    variant: u16,
    occurrence: i64,
    expires: i64,
    /// Timed before the rules' `start`: never sent.
    before_start: bool,
    /// What the ledger already has for this send, if anything.
    ledger: Option<SendStatus>,
}

/// What one patient's evaluation came to, as the evaluating thread hands it over: their sends
/// (numbered as a patient once they are taken in file order), where they go, and the notes
/// the warnings after the pass count.
struct Planned {
    rows: Vec<Row>,
    recipient: Recipient,
    notes: Vec<StepNote>,
}

pub fn run(request: &PlanRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let rules = load_rules(&request.rules, io)?;
    let plan = TimingPlan::compile(&rules);
    let window = request.times.resolve(plan.timezone)?;
    // Links, blocks, reactions and the window's sends are read once; the ledger is not kept
    // open while the export is read. The calendar shows counts only: it marks nothing, so it
    // reads no sends.
    let marking = request.format != PlanFormat::Html;
    let (recipients, marks, reactions) = match recipients::open_for_reading(
        request.ledger.as_deref(),
        &request.rules.file,
        plan.clinic.as_deref(),
    )? {
        Some(ledger) => (
            Recipients::load(&*ledger)?,
            match marking {
                true => Some(LedgerMarks::load(&*ledger, &plan, window)?),
                false => None,
            },
            PassReactions::load(&*ledger, &plan, window.now)?,
        ),
        None => (Recipients::default(), None, PassReactions::none(&plan)),
    };
    let ledger_read = marks.is_some();
    let reactions_unread = reactions.used() && reactions.is_unread();
    // The calendar marks nothing from a ledger, so it has no "no ledger" line to join.
    if reactions_unread && !marking {
        writeln!(io.err, "note: no ledger, so {UNREAD_REACTIONS}")?;
    }
    let mut rows: Vec<Row> = Vec::new();
    // Counted as the rows come, so that sorting them after the last patient is one pass.
    let mut times = SendTimes::new();
    let mut patients = PatientIds::default();
    // Per patient, not per row: a million rows stay as small as before.
    let mut reached: Vec<Recipient> = Vec::new();
    let mut script_failures = StepWarnings::default();
    // The calendar keeps counts per (step, day) only, never the sends.
    let mut calendar = match request.format {
        PlanFormat::Html => Some(
            SendCalendar::new(window, plan.timezone, plan.steps.len())
                .map_err(|e| AppError::Usage(e.to_string()))?,
        ),
        _ => None,
    };
    // Each patient is evaluated on the thread that read them, by that thread's evaluator;
    // this one takes what they came to in file order, leaving its lists to be filled again.
    let evaluator = || PlanWork::new(&plan, window, &recipients, marks.as_ref(), &reactions);
    let counts = for_each_patient_lent(
        &request.patients,
        &plan.schema,
        io.err,
        &evaluator,
        |patient, planned: &mut Planned| {
            script_failures.note_all(patient.line, &planned.notes);
            if let Some(calendar) = calendar.as_mut() {
                let sends = planned.rows.iter().map(|row| {
                    // The seconds came from an instant; the fallback is never taken.
                    let at = DateTime::from_timestamp(row.at, 0).unwrap_or_default();
                    (at, row.step as usize)
                });
                calendar.add_patient(sends, planned.recipient == Recipient::Blocked);
                return Ok(true);
            }
            if !planned.rows.is_empty() {
                let index = u32::try_from(patients.len()).unwrap_or(u32::MAX);
                patients.push(&patient.id);
                reached.push(planned.recipient);
                rows.extend(planned.rows.iter().map(|&row| {
                    times.note(row.at);
                    Row {
                        patient: index,
                        ..row
                    }
                }));
            }
            Ok(true)
        },
    )?;
    script_failures.report(&plan, io.err)?;
    // By instant, then file order of patients, then steps.
    let rows = order::sorted(rows, times);
    let view = View {
        plan: &plan,
        patients: &patients,
        reached: &reached,
    };
    match request.format {
        PlanFormat::Json => view.json(&rows, io.out)?,
        PlanFormat::Csv => view.csv(&rows, io.out)?,
        PlanFormat::Table => view.table(&rows, window, request.quota, io.out)?,
        PlanFormat::Html => {
            if let Some(calendar) = &calendar {
                let page =
                    month_view::html::render(&rules, calendar).map_err(std::io::Error::other)?;
                io.out.write_all(page.as_bytes())?;
            }
        }
    }
    let (sends, reached_patients, blocked) = match &calendar {
        Some(calendar) => (
            calendar.total() + calendar.blocked(),
            calendar.patients(),
            calendar.blocked(),
        ),
        None => (
            rows.len() as u64,
            patients.len() as u64,
            rows.iter().filter(|r| view.blocked(r)).count() as u64,
        ),
    };
    writeln!(
        io.err,
        "{} sends to {} patients from {} to {} ({} patients read{}{})",
        sends,
        reached_patients,
        view.local(window.from),
        view.local(window.to),
        counts.read,
        match counts.skipped {
            0 => String::new(),
            n => format!(", {n} rows skipped"),
        },
        match counts.unreadable {
            0 => String::new(),
            n => format!(", {n} with unreadable cells"),
        }
    )?;
    if blocked > 0 {
        writeln!(
            io.err,
            "{blocked} of them go to patients who blocked the account: not pushed unless they \
             follow again first (recipient `blocked`)"
        )?;
    }
    let skipped = rows.iter().filter(|r| r.before_start).count();
    if let (true, Some(start)) = (skipped > 0, plan.start) {
        writeln!(
            io.err,
            "{skipped} of them are timed before the start ({}): `run` records them as skipped \
             and never sends them (recipient `skipped`)",
            view.local(start)
        )?;
    }
    if marking && !ledger_read {
        write!(
            io.err,
            "no ledger (none beside the rules, and no --ledger): sends earlier runs made are not \
             marked"
        )?;
        if reactions_unread {
            write!(io.err, ", and {UNREAD_REACTIONS}")?;
        }
        writeln!(io.err)?;
    } else if let (true, Some(known)) = (marking, ledger_summary(&rows)) {
        writeln!(
            io.err,
            "{known} (column `ledger`; `run` sends again only those pending, held or blocked)"
        )?;
    }
    Ok(if counts.incomplete() {
        Outcome::RowsSkipped
    } else {
        Outcome::Ok
    })
}

struct View<'a> {
    plan: &'a TimingPlan,
    patients: &'a PatientIds,
    reached: &'a [Recipient],
}

impl View<'_> {
    fn tz(&self) -> Tz {
        self.plan.timezone
    }

    fn instant(&self, seconds: i64) -> DateTime<Tz> {
        // The seconds came from an instant; the fallback is never taken.
        DateTime::from_timestamp(seconds, 0)
            .unwrap_or_default()
            .with_timezone(&self.tz())
    }

    fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.tz())
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn names(&self, row: &Row) -> (&str, &str, &str, Option<&str>) {
        let step = &self.plan.steps[row.step as usize];
        let template = step.variants[row.variant as usize].template.name.as_str();
        let variant = (step.variants.len() > 1).then_some(template);
        (
            self.patients.get(row.patient as usize),
            step.id.as_str(),
            template,
            variant,
        )
    }

    fn recipient(&self, row: &Row) -> Recipient {
        match row.before_start {
            true => Recipient::Skipped,
            false => self.reached[row.patient as usize],
        }
    }

    fn blocked(&self, row: &Row) -> bool {
        self.recipient(row) == Recipient::Blocked
    }

    /// The patient id as text for a terminal or a spreadsheet (control characters escaped);
    /// JSON escapes them itself.
    fn shown_patient(&self, row: &Row) -> std::borrow::Cow<'_, str> {
        crate::printable::printable(self.patients.get(row.patient as usize))
    }

    /// The send's three instants as RFC 3339, one after another in `buf`: at, occurrence,
    /// expires, each written afresh (what the tests hold the remembered ones to).
    #[cfg(test)]
    fn instants<'b>(&self, row: &Row, buf: &'b mut String) -> [&'b str; 3] {
        buf.clear();
        let mut ends = [0; 3];
        for (end, seconds) in ends.iter_mut().zip([row.at, row.occurrence, row.expires]) {
            crate::time::push_rfc3339(buf, seconds, self.tz());
            *end = buf.len();
        }
        [&buf[..ends[0]], &buf[ends[0]..ends[1]], &buf[ends[1]..]]
    }

    fn csv(&self, rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record([
            "at",
            "patient",
            "step",
            "template",
            "variant",
            "occurrence",
            "expires",
            "recipient",
            "ledger",
        ])?;
        // The three instants of a row, one after another: one buffer for every row.
        let mut instants = instants::InstantTexts::new(self.tz());
        let mut buf = Vec::new();
        for row in rows {
            let (_, step, template, variant) = self.names(row);
            buf.clear();
            instants.push(&mut buf, row.at);
            let at_end = buf.len();
            instants.push(&mut buf, row.occurrence);
            let occurrence_end = buf.len();
            instants.push(&mut buf, row.expires);
            writer.write_record([
                &buf[..at_end],
                self.shown_patient(row).as_bytes(),
                step.as_bytes(),
                template.as_bytes(),
                variant.unwrap_or("").as_bytes(),
                &buf[at_end..occurrence_end],
                &buf[occurrence_end..],
                self.recipient(row).as_str().as_bytes(),
                row.ledger.map_or("", SendStatus::as_str).as_bytes(),
            ])?;
        }
        writer.flush()
    }

    fn table(
        &self,
        rows: &[Row],
        window: Window,
        quota: Option<u64>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let width = |f: &dyn Fn(&Row) -> usize, title: &str| {
            rows.iter().map(f).max().unwrap_or(0).max(title.len())
        };
        let patient_w = width(&|r| self.shown_patient(r).len(), "patient");
        let step_w = width(&|r| self.names(r).1.len(), "step");
        let template_w = width(&|r| self.names(r).2.len(), "template");
        let variant_w = width(&|r| self.names(r).3.map_or(1, str::len), "variant");
        writeln!(
            out,
            "{:<16}  {:<patient_w$}  {:<step_w$}  {:<template_w$}  {:<variant_w$}  {:<9}  ledger",
            "at", "patient", "step", "template", "variant", "recipient"
        )?;
        let mut blocked = 0u64;
        let mut skipped = 0u64;
        let mut per_day: BTreeMap<NaiveDate, u64> = BTreeMap::new();
        for row in rows {
            let (_, step, template, variant) = self.names(row);
            let patient = self.shown_patient(row);
            let at = self.instant(row.at);
            // A blocked send is not pushed, so LINE does not count it against the quota.
            if row.before_start {
                skipped += 1;
            } else if row.ledger.is_some_and(never_goes_out) {
                // Settled in the ledger without going out: LINE never counts it.
            } else if self.blocked(row) {
                blocked += 1;
            } else {
                *per_day.entry(at.date_naive()).or_default() += 1;
            }
            writeln!(
                out,
                "{:<16}  {patient:<patient_w$}  {step:<step_w$}  {template:<template_w$}  \
                 {:<variant_w$}  {:<9}  {}",
                at.format("%Y-%m-%d %H:%M"),
                variant.unwrap_or("-"),
                self.recipient(row).as_str(),
                row.ledger.map_or("-", SendStatus::as_str)
            )?;
        }
        if blocked > 0 {
            writeln!(
                out,
                "\n{blocked} send(s) to patients who blocked the account are not counted below"
            )?;
        }
        if let Some(known) = ledger_summary(rows) {
            writeln!(
                out,
                "\n{known} (column `ledger`); those failed, skipped or expired are not counted \
                 below"
            )?;
        }
        if let (true, Some(start)) = (skipped > 0, self.plan.start) {
            writeln!(
                out,
                "\n{skipped} send(s) timed before the start ({}) are recorded as skipped by \
                 `run`, never sent, and not counted below",
                self.local(start)
            )?;
        }
        writeln!(out)?;
        writeln!(out, "per day")?;
        for (day, count) in &per_day {
            writeln!(
                out,
                "  {} ({})  {count:>7}",
                day,
                crate::time::weekday_ja(day)
            )?;
        }
        self.months(&per_day, window, quota, out)
    }

    /// Messages per calendar month: counted in the window and, for a month the window covers
    /// only partly, projected to the whole month at the same daily rate.
    fn months(
        &self,
        per_day: &BTreeMap<NaiveDate, u64>,
        window: Window,
        quota: Option<u64>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let tz = self.tz();
        let first = window.from.with_timezone(&tz).date_naive();
        let last = (window.to - chrono::Duration::seconds(1))
            .with_timezone(&tz)
            .date_naive();
        let mut months: BTreeMap<(i32, u32), (u64, u32, u32)> = BTreeMap::new();
        let mut day = first;
        while day <= last {
            let entry =
                months
                    .entry((day.year(), day.month()))
                    .or_insert((0, 0, days_in_month(day)));
            entry.0 += per_day.get(&day).copied().unwrap_or(0);
            entry.1 += 1;
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        writeln!(out)?;
        writeln!(out, "per month (LINE counts one message per send)")?;
        for ((year, month), (count, covered, days)) in months {
            let projected = count * u64::from(days) / u64::from(covered.max(1));
            let partly = if covered < days {
                format!("  (window covers {covered} of {days} days; projected {projected})")
            } else {
                String::new()
            };
            let over = match quota {
                Some(quota) if projected > quota => format!("  ⚠ over the quota of {quota}"),
                _ => String::new(),
            };
            writeln!(out, "  {year}-{month:02}  {count:>7}{partly}{over}")?;
        }
        Ok(())
    }
}

/// Whether a send the ledger holds in `status` is settled without ever going out.
fn never_goes_out(status: SendStatus) -> bool {
    matches!(
        status,
        SendStatus::Failed | SendStatus::Skipped | SendStatus::Expired
    )
}

/// How many planned sends the ledger already has, by status: `3 of them are in the ledger
/// already: 2 sent, 1 failed`; `None` when it has none of them.
fn ledger_summary(rows: &[Row]) -> Option<String> {
    let mut by_status: BTreeMap<SendStatus, u64> = BTreeMap::new();
    for status in rows.iter().filter_map(|r| r.ledger) {
        *by_status.entry(status).or_default() += 1;
    }
    let total: u64 = by_status.values().sum();
    if total == 0 {
        return None;
    }
    let parts: Vec<String> = by_status
        .iter()
        .map(|(status, n)| format!("{n} {}", status.as_str()))
        .collect();
    Some(format!(
        "{total} of them are in the ledger already: {}",
        parts.join(", ")
    ))
}

fn days_in_month(day: NaiveDate) -> u32 {
    let (year, month) = (day.year(), day.month());
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(30, |d| d.day())
}
