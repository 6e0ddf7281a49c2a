//! `steprule explain`: for one patient, one line per step — when it sends, or exactly why not;
//! with a ledger, also whether they linked LINE, whether they blocked the account, and what
//! became of each step's earlier sends (evaluated on the same sent history as `run`).

mod ledger;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::reactions::{PassReactions, UNREAD_REACTIONS};
use super::recipients;
use super::{
    for_each_patient, load_rules, AppError, Io, Outcome, PatientSource, RulesSource, WindowArgs,
};
use crate::eval::{anchor_name, DueSend, Evaluator, Moved, PatientOutcome, Reason, Window};
use crate::ledger::{LedgerError, ReadLedger};
use crate::plan::{AnchorField, Direction, Offset, PlannedStep, TimingPlan};
use crate::records::PatientRecord;
use ledger::{step_lines, PatientLedger};

/// How far ahead `explain` looks for a step's next send.
pub use crate::eval::EXPLAIN_HORIZON_DAYS as HORIZON_DAYS;

#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    pub patient: String,
    pub now: Option<String>,
    /// The ledger to read the patient's link and block from (default: `run`'s, when it
    /// exists).
    pub ledger: Option<PathBuf>,
}

/// What the ledger says about the patient's LINE user.
#[derive(Debug, Default)]
struct LineState {
    /// When the LINE user the sends would go to was linked, if they come from a link.
    linked_at: Option<DateTime<Utc>>,
    /// The export has a LINE id, and the latest link (linked then) is another user.
    conflict_since: Option<DateTime<Utc>>,
    /// When that LINE user blocked the account, if they have.
    blocked_since: Option<DateTime<Utc>>,
}

impl LineState {
    /// Fills in the patient's linked LINE user where the export has none.
    fn read(
        ledger: &dyn ReadLedger,
        patient: &mut PatientRecord,
    ) -> Result<LineState, LedgerError> {
        let mut state = LineState::default();
        if let Some(link) = ledger.patient_links(&patient.id)?.pop() {
            match &patient.line_user_id {
                None => {
                    state.linked_at = Some(link.linked_at);
                    patient.line_user_id = Some(link.line_user);
                }
                Some(export) if *export != link.line_user => {
                    state.conflict_since = Some(link.linked_at);
                }
                Some(_) => {}
            }
        }
        if let Some(user) = &patient.line_user_id {
            state.blocked_since = ledger
                .friend(user)?
                .filter(|friend| friend.blocked)
                .map(|friend| friend.since);
        }
        Ok(state)
    }
}

pub fn run(request: &ExplainRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let rules = load_rules(&request.rules, io)?;
    let plan = TimingPlan::compile(&rules);
    let times = WindowArgs {
        now: request.now.clone(),
        ..WindowArgs::default()
    };
    let now = times.resolve(plan.timezone)?.now;
    let mut found: Option<PatientRecord> = None;
    for_each_patient(&request.patients, &plan.schema, io.err, |patient| {
        if patient.id == request.patient {
            found = Some(patient.clone());
            return Ok(false);
        }
        Ok(true)
    })?;
    let Some(mut patient) = found else {
        return Err(AppError::NoSuchPatient {
            id: request.patient.clone(),
            file: request.patients.file.clone(),
        });
    };
    let (line, sends, reactions) = match recipients::open_for_reading(
        request.ledger.as_deref(),
        &request.rules.file,
        plan.clinic.as_deref(),
    )? {
        Some(ledger) => {
            let line = LineState::read(&*ledger, &mut patient)?;
            let sends = ledger.patient_sends(&patient.id)?;
            let reactions = PassReactions::load(&*ledger, &plan, now)?;
            (line, PatientLedger::new(&plan, sends), reactions)
        }
        None => (
            LineState::default(),
            PatientLedger::default(),
            PassReactions::none(&plan),
        ),
    };
    let reactions_unread = reactions.used() && reactions.is_unread();
    let window = Window {
        now,
        from: now,
        to: now + chrono::Duration::days(HORIZON_DAYS),
    };
    let mut outcome = PatientOutcome::default();
    // Exactly as `run` evaluates: what went out is not due again and takes its cap slot.
    Evaluator::explaining(&plan).evaluate_reacting(
        &patient,
        window,
        &sends.history(),
        reactions.of(&patient),
        &mut outcome,
    );
    sends.settle(&mut outcome);
    let text = Explanation {
        plan: &plan,
        line: &line,
        sends: &sends,
        reactions_unread,
    }
    .render(&patient, now, &outcome);
    // Names, ids and other values from the export are escaped before reaching a terminal.
    io.out
        .write_all(crate::printable::printable_lines(&text).as_bytes())?;
    Ok(Outcome::Ok)
}

struct Explanation<'a> {
    plan: &'a TimingPlan,
    line: &'a LineState,
    sends: &'a PatientLedger,
    /// The rules react to patients and no ledger was there to read their reactions from.
    reactions_unread: bool,
}

impl Explanation<'_> {
    fn time(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.plan.timezone);
        format!(
            "{} ({}) {}",
            local.format("%Y-%m-%d"),
            crate::time::weekday_ja(&local),
            local.format("%H:%M")
        )
    }

    fn render(
        &self,
        patient: &PatientRecord,
        now: DateTime<Utc>,
        outcome: &PatientOutcome,
    ) -> String {
        let stage = patient
            .stage
            .map_or("no stage", |s| self.plan.schema.stages[s].as_str());
        let since = patient
            .stage_entered_at
            .map(|t| format!(" since {}", self.time(t)))
            .unwrap_or_default();
        let linked = match (self.line.linked_at, &patient.line_user_id) {
            (Some(at), _) => format!("linked on {} (the export has no LINE id)", self.time(at)),
            (None, Some(_)) => "linked".to_owned(),
            (None, None) => "not linked".to_owned(),
        };
        let mut text = format!(
            "patient {} — stage {stage}{since}; LINE {linked}; {}\n",
            patient.id,
            if patient.opted_out {
                "opted out"
            } else {
                "receives messages"
            },
        );
        if let Some(at) = self.line.conflict_since {
            text.push_str(&format!(
                "the export's line_user_id is not the LINE user linked on {}; the export's is used\n",
                self.time(at)
            ));
        }
        if let Some(at) = self.line.blocked_since {
            text.push_str(&format!(
                "the patient blocked the account on {}: sends are not pushed unless they follow \
                 again first\n",
                self.time(at)
            ));
        }
        if !self.sends.read {
            text.push_str(
                "no ledger (none beside the rules, and no --ledger): what earlier runs sent is \
                 not known",
            );
            if self.reactions_unread {
                text.push_str(", and ");
                text.push_str(UNREAD_REACTIONS);
            }
            text.push('\n');
        }
        text.push_str(&format!("as of {}\n\n", self.time(now)));
        let width = self
            .plan
            .steps
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(4);
        for step in &self.plan.steps {
            let (skipped, sends): (Vec<&DueSend>, Vec<&DueSend>) = outcome
                .sends
                .iter()
                .filter(|s| s.step == step.index)
                .partition(|s| s.before_start);
            let mut lines = step_lines(self.sends.of(step.index), &|at| self.time(at));
            if let (Some(first), Some(start)) = (skipped.first(), self.plan.start) {
                let more = match skipped.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                lines.push(format!(
                    "skipped: timed before the start ({}), it would go out at {}{more}; `run` \
                     records it as skipped and never sends it",
                    self.time(start),
                    self.time(first.at)
                ));
            }
            if let Some(first) = sends.first() {
                let template = &step.variants[first.variant].template.name;
                let more = match sends.len() {
                    1 => String::new(),
                    n => format!(", then {} more in the next {HORIZON_DAYS} days", n - 1),
                };
                let blocked = if self.line.blocked_since.is_some() {
                    " — not pushed: the patient blocked the account"
                } else {
                    ""
                };
                lines.push(format!(
                    "sends {template} at {}{}{more}{blocked}",
                    self.time(first.at),
                    self.moved(first, step)
                ));
            }
            for note in outcome.notes.iter().filter(|n| n.step == step.index) {
                lines.push(self.reason(&note.reason, step));
            }
            if let (Some(first), Some(series)) = (lines.first_mut(), self.series(step)) {
                first.insert_str(0, &series);
            }
            for (i, line) in lines.iter().enumerate() {
                let id = if i == 0 { step.id.as_str() } else { "" };
                text.push_str(&format!("{id:<width$}  {line}\n"));
            }
        }
        text
    }

    /// `every 1y after birth_date: ` for a series on a date field, so that the line says what
    /// the occurrences count from (the field's current value: a new value, a new series).
    fn series(&self, step: &PlannedStep) -> Option<String> {
        match (step.direction, step.anchor) {
            (Direction::Every, AnchorField::BirthDate | AnchorField::Date(_)) => Some(format!(
                "every {} after {}: ",
                period_text(step.offset),
                anchor_name(self.plan, step.anchor)
            )),
            _ => None,
        }
    }

    fn moved(&self, send: &DueSend, step: &PlannedStep) -> String {
        match send.moved {
            None => String::new(),
            Some(Moved::QuietHours { from }) => {
                format!(" (held by quiet hours from {})", self.time(from))
            }
            Some(Moved::Overdue { due }) => format!(
                " (overdue since {}; goes out on the next run, until {})",
                self.time(due),
                self.time(send.expires)
            ),
            Some(Moved::Cap { from }) => format!(
                " (moved by the cap: {} was full)",
                self.time(from).split(' ').next().unwrap_or_default()
            ),
            Some(Moved::NextDay { from, anchor }) => format!(
                " (moved to the next day: {} is before {} at {})",
                self.time(from),
                anchor_name(self.plan, step.anchor),
                self.time(anchor)
            ),
        }
    }

    /// Why a step that needs marketing consent is not sent. Says what the cell is like, not
    /// what it holds.
    fn no_consent(&self, consent: crate::eval::Consent, step: &PlannedStep) -> String {
        use crate::eval::Consent;
        let kind = match step.purpose {
            crate::plan::Purpose::Promo => "promo step",
            crate::plan::Purpose::Care => "step requires consent",
        };
        let field = self
            .plan
            .consent
            .and_then(|index| self.plan.schema.fields.get(index));
        let cell = match (field, consent) {
            (None, _) => "the rules have no `consent` field".to_owned(),
            (Some(field), Consent::Refused) => format!("consent field `{field}` says no"),
            (Some(field), Consent::Unreadable) => {
                format!("consent field `{field}` is neither yes nor no")
            }
            (Some(field), Consent::Empty | Consent::Given) => {
                format!("consent field `{field}` is empty")
            }
        };
        format!("{kind}: not sent, no marketing consent ({cell})")
    }

    fn reason(&self, reason: &Reason, step: &PlannedStep) -> String {
        match reason {
            Reason::OptedOut => "not sent: the patient opted out".into(),
            Reason::NoConsent(consent) => self.no_consent(*consent, step),
            Reason::NoLineUserId => {
                "not sent: no LINE user id (the patient has not linked LINE)".into()
            }
            Reason::ConditionFalse(parts) => {
                format!("not sent: condition false: {}", parts.join("; "))
            }
            Reason::NoAnchor(field) => format!("not sent: {field} is empty"),
            Reason::NotSentYet(step) => {
                format!("not evaluated: {step} was not delivered to this patient yet")
            }
            Reason::Unreadable(field) => format!(
                "not evaluated: the patient's {field} cell cannot be read (see the warning for \
                 its line)"
            ),
            Reason::Expired { due, expired } => format!(
                "expired at {} (was due {})",
                self.time(*expired),
                self.time(*due)
            ),
            Reason::NotBeforeAnchor { due, anchor } => format!(
                "not sent: it would go out at {}, not before {}",
                self.time(*due),
                self.time(*anchor)
            ),
            Reason::OnAnchorDay { at, anchor } => format!(
                "not sent: it would go out at {}, on the day of {} ({}); a reminder timed for an \
                 earlier day never goes out on the day itself (write `even on the day` after its \
                 timing to allow it)",
                self.time(*at),
                anchor_name(self.plan, step.anchor),
                self.time(*anchor)
            ),
            Reason::Unless { at, parts } => format!(
                "stopped at {} by unless: {}",
                self.time(*at),
                parts.join("; ")
            ),
            Reason::Capped { due } => format!(
                "dropped by the cap: no free day before it expired (was due {})",
                self.time(*due)
            ),
            Reason::Script(message) => format!("not sent: the rhai condition failed: {message}"),
            Reason::BeyondCalendar => "never sent: its time is beyond the calendar".into(),
            Reason::TooManyOccurrences { through } => format!(
                "looked at its first {} occurrences only, through {}",
                crate::eval::MAX_OCCURRENCES,
                self.time(*through)
            ),
            Reason::NotInWindow { next: Some(next) } => format!("next at {}", self.time(*next)),
            Reason::NotInWindow { next: None } => {
                format!("nothing to send in the next {HORIZON_DAYS} days")
            }
        }
    }
}

/// A period as the rules write it: `1y`, `6mo`, `2w`, `30d`, `1h` (12 months read as `1y`,
/// 14 days as `2w`: the plan keeps the length, not the spelling).
fn period_text(offset: Offset) -> String {
    match offset {
        Offset::Months(m) if m % 12 == 0 => format!("{}y", m / 12),
        Offset::Months(m) => format!("{m}mo"),
        Offset::Days(d) if d % 7 == 0 => format!("{}w", d / 7),
        Offset::Days(d) => format!("{d}d"),
        Offset::Minutes(m) if m % 60 == 0 => format!("{}h", m / 60),
        Offset::Minutes(m) => format!("{m}m"),
    }
}

/// Why a send goes out later than its step's time, in explain's words (for `preview`).
pub(super) fn moved_text(plan: &TimingPlan, send: &DueSend) -> String {
    let (line, sends) = (LineState::default(), PatientLedger::default());
    Explanation {
        plan,
        line: &line,
        sends: &sends,
        reactions_unread: false,
    }
    .moved(send, &plan.steps[send.step])
}

/// Why a step sends nothing, in explain's words (for `preview`).
pub(super) fn reason_text(plan: &TimingPlan, reason: &Reason, step: &PlannedStep) -> String {
    let (line, sends) = (LineState::default(), PatientLedger::default());
    Explanation {
        plan,
        line: &line,
        sends: &sends,
        reactions_unread: false,
    }
    .reason(reason, step)
}

/// An instant as explain shows it: `2026-11-25 (水) 18:00` in the clinic's time.
pub(super) fn time_text(plan: &TimingPlan, at: DateTime<Utc>) -> String {
    let (line, sends) = (LineState::default(), PatientLedger::default());
    Explanation {
        plan,
        line: &line,
        sends: &sends,
        reactions_unread: false,
    }
    .time(at)
}
